// Command inclusterprobe is the pod of the in-cluster e2e test
// (test/e2e/incluster_test.go): with client-go's in-cluster configuration
// (KUBERNETES_SERVICE_HOST/PORT, the service account's token and ca.crt; no
// insecure option) it gets one ConfigMap and lists the ConfigMaps of its
// namespace every half second, and writes what it got, with the subject of
// the certificate that answered, to DIR/status.json, which the test reads
// from the host's filesystem (that works while the node's link is cut).
// Each round also dials the same address with a CA of its own: that must
// fail, or the certificate check proves nothing.
//
//	inclusterprobe DIR NAMESPACE CONFIGMAP
package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// Status is one round.
type Status struct {
	Time time.Time `json:"time"`
	// Host is the API address of the in-cluster configuration.
	Host string `json:"host"`
	// Value is data["value"] of the ConfigMap got; Listed the names listed.
	Value  string   `json:"value"`
	Listed []string `json:"listed"`
	// ServerCN is the subject CN of the certificate that answered.
	ServerCN string `json:"serverCN"`
	GetError string `json:"getError"`
	ListErr  string `json:"listError"`
	// ForeignCAError is what a client trusting another CA got: never empty.
	ForeignCAError string `json:"foreignCAError"`
}

// peerCN records the subject CN of the server certificate of answers.
type peerCN struct {
	next http.RoundTripper
	mu   sync.Mutex
	cn   string
}

func (p *peerCN) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := p.next.RoundTrip(r)
	if err == nil && resp.TLS != nil && len(resp.TLS.PeerCertificates) > 0 {
		p.mu.Lock()
		p.cn = resp.TLS.PeerCertificates[0].Subject.CommonName
		p.mu.Unlock()
	}
	return resp, err
}

func main() {
	if len(os.Args) != 4 {
		fmt.Fprintln(os.Stderr, "usage: inclusterprobe DIR NAMESPACE CONFIGMAP")
		os.Exit(2)
	}
	dir, ns, name := os.Args[1], os.Args[2], os.Args[3]
	cfg, err := rest.InClusterConfig()
	if err != nil {
		fmt.Fprintln(os.Stderr, "in-cluster configuration:", err)
		os.Exit(1)
	}
	if cfg.Insecure {
		fmt.Fprintln(os.Stderr, "the in-cluster configuration is insecure")
		os.Exit(1)
	}
	cfg.Timeout = 5 * time.Second
	var peer *peerCN
	cfg.WrapTransport = func(rt http.RoundTripper) http.RoundTripper {
		peer = &peerCN{next: rt}
		return peer
	}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	foreign := foreignCAClient()
	for {
		st := Status{Time: time.Now().UTC(), Host: cfg.Host}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if cm, err := client.CoreV1().ConfigMaps(ns).Get(ctx, name, metav1.GetOptions{}); err != nil {
			st.GetError = err.Error()
		} else {
			st.Value = cm.Data["value"]
		}
		if l, err := client.CoreV1().ConfigMaps(ns).List(ctx, metav1.ListOptions{}); err != nil {
			st.ListErr = err.Error()
		} else {
			for _, cm := range l.Items {
				st.Listed = append(st.Listed, cm.Name)
			}
		}
		cancel()
		if peer != nil {
			peer.mu.Lock()
			st.ServerCN = peer.cn
			peer.mu.Unlock()
		}
		if resp, err := foreign.Get(cfg.Host + "/version"); err != nil {
			st.ForeignCAError = err.Error()
		} else {
			resp.Body.Close()
		}
		b, _ := json.Marshal(st)
		tmp := filepath.Join(dir, ".status.json")
		if os.WriteFile(tmp, b, 0o644) == nil {
			_ = os.Rename(tmp, filepath.Join(dir, "status.json"))
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// foreignCAClient trusts only a CA made here: every server of the cluster
// must fail its check.
func foreignCAClient() *http.Client {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "foreign"}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, _ := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	ca, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DialContext:     (&net.Dialer{Timeout: 3 * time.Second}).DialContext,
		TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
	}}
}
