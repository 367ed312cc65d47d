// Command dnsprobe is the pod of the edge DNS e2e test (test/e2e/edgedns_test.go):
// it resolves each name given, with Go's own resolver (so through the pod's
// /etc/resolv.conf, which the kubelet writes from clusterDNS), every half
// second, and writes what it got to DIR/status.json, which the test reads
// from the host's filesystem: that works while the node's link is cut.
//
//	dnsprobe DIR NAME...
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"
)

// Status is one round of lookups.
type Status struct {
	Time       time.Time           `json:"time"`
	ResolvConf string              `json:"resolvConf"`
	Addrs      map[string][]string `json:"addrs"`
	Errors     map[string]string   `json:"errors"`
}

func main() {
	if len(os.Args) < 3 {
		fmt.Fprintln(os.Stderr, "usage: dnsprobe DIR NAME...")
		os.Exit(2)
	}
	dir, names := os.Args[1], os.Args[2:]
	r := &net.Resolver{PreferGo: true}
	for {
		st := Status{Time: time.Now().UTC(), Addrs: map[string][]string{}, Errors: map[string]string{}}
		rc, _ := os.ReadFile("/etc/resolv.conf")
		st.ResolvConf = string(rc)
		for _, n := range names {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			addrs, err := r.LookupHost(ctx, n)
			cancel()
			if err != nil {
				st.Errors[n] = err.Error()
				continue
			}
			st.Addrs[n] = addrs
		}
		b, _ := json.Marshal(st)
		tmp := filepath.Join(dir, ".status.json")
		if err := os.WriteFile(tmp, b, 0o644); err == nil {
			os.Rename(tmp, filepath.Join(dir, "status.json"))
		}
		time.Sleep(500 * time.Millisecond)
	}
}
