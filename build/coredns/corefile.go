package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/coredns/caddy"
)

// takeConfFlag removes -conf (in any of the flag package's spellings) from
// args and returns its value with the remaining arguments.
func takeConfFlag(args []string) (string, []string) {
	var conf string
	rest := make([]string, 0, len(args))
	for i := 0; i < len(args); i++ {
		a := args[i]
		if i == 0 {
			rest = append(rest, a)
			continue
		}
		if a == "--" {
			rest = append(rest, args[i:]...)
			break
		}
		name, value, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !strings.HasPrefix(a, "-") || name != "conf" {
			rest = append(rest, a)
			continue
		}
		if hasValue {
			conf = value
			continue
		}
		if i+1 < len(args) {
			conf = args[i+1]
			i++
		}
	}
	return conf, rest
}

// corefileLoader reads the Corefile at path, as CoreDNS's -conf does, with
// upstreamless applied. The reload plugin calls it again on each check.
func corefileLoader(path string) caddy.Loader {
	return caddy.LoaderFunc(func(serverType string) (caddy.Input, error) {
		if path == "" {
			return nil, nil
		}
		contents, err := os.ReadFile(filepath.Clean(path))
		if err != nil {
			return nil, fmt.Errorf("read the Corefile: %w", err)
		}
		contents, dropped := upstreamless(contents, hasNameserver)
		for _, d := range dropped {
			fmt.Fprintf(os.Stderr, "[WARNING] edge coredns: %q lists no nameserver, so names outside the cluster are not forwarded (line %q left out). "+
				"Give the node a resolver (the kubelet's resolvConf) and restart the pod.\n", d.file, d.line)
		}
		return caddy.CaddyfileInput{Contents: contents, Filepath: path, ServerTypeName: serverType}, nil
	})
}

// droppedForward is a forward line left out, and the resolver file that
// made it so.
type droppedForward struct{ file, line string }

// upstreamless leaves out every one-line "forward FROM FILE..." whose
// resolver files all list no nameserver. CoreDNS's forward plugin refuses to
// start without an upstream, and a node with no DNS server (an offline edge
// box: systemd-resolved's upstream list is empty) would crash-loop its edge
// coredns, taking the cluster's own names down with it. Without the line,
// cluster names still resolve and the rest get SERVFAIL. Forward lines with
// an address, or a block, are kept as they are.
func upstreamless(corefile []byte, serves func(file string) bool) ([]byte, []droppedForward) {
	var out bytes.Buffer
	var dropped []droppedForward
	sc := bufio.NewScanner(bytes.NewReader(corefile))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		fields := strings.Fields(line)
		if len(fields) >= 3 && fields[0] == "forward" && !strings.HasSuffix(line, "{") {
			files := fields[2:]
			allEmpty := true
			for _, f := range files {
				if !strings.HasPrefix(f, "/") || serves(f) {
					allEmpty = false
					break
				}
			}
			if allEmpty {
				dropped = append(dropped, droppedForward{file: strings.Join(files, " "), line: strings.TrimSpace(line)})
				continue
			}
		}
		out.WriteString(line)
		out.WriteByte('\n')
	}
	if sc.Err() != nil {
		// An unreadable line: hand CoreDNS the Corefile untouched, and let
		// its parser say what is wrong.
		return corefile, nil
	}
	return out.Bytes(), dropped
}

// hasNameserver reports whether the resolv.conf at path names a server. A
// file that cannot be read counts as serving: forward then reports it.
func hasNameserver(path string) bool {
	data, err := os.ReadFile(path)
	if err != nil {
		return true
	}
	for _, l := range strings.Split(string(data), "\n") {
		f := strings.Fields(l)
		if len(f) >= 2 && f[0] == "nameserver" {
			return true
		}
	}
	return false
}
