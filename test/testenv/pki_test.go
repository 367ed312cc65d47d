package testenv

import (
	"crypto/x509"
	"net"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestNewPKIServingCertNamesOnlyInClusterNames(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pki")
	p, err := NewPKI(dir, PKISpec{ServiceIP: net.ParseIP("10.112.0.1"), DNSDomain: "edge.test"})
	if err != nil {
		t.Fatal(err)
	}
	wantDNS := []string{"kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.edge.test"}
	if !slices.Equal(p.APIServer.DNSNames, wantDNS) {
		t.Errorf("apiserver DNS SANs = %v, want exactly %v", p.APIServer.DNSNames, wantDNS)
	}
	var ips []string
	for _, ip := range p.APIServer.IPAddresses {
		ips = append(ips, ip.String())
	}
	if want := []string{"10.112.0.1", "127.0.0.1"}; !slices.Equal(ips, want) {
		t.Errorf("apiserver IP SANs = %v, want exactly %v", ips, want)
	}
	if err := p.APIServer.VerifyHostname("198.18.1.1"); err == nil {
		t.Errorf("apiserver certificate is valid for a public address; it must not be")
	}

	roots := x509.NewCertPool()
	roots.AddCert(p.CA)
	fpRoots := x509.NewCertPool()
	fpRoots.AddCert(p.FrontProxyCA)
	for _, c := range []struct {
		base  string
		roots *x509.CertPool
		usage x509.ExtKeyUsage
		cn    string
		orgs  []string
	}{
		{apiserverBase, roots, x509.ExtKeyUsageServerAuth, "kube-apiserver", nil},
		{apiserverKubeletBase, roots, x509.ExtKeyUsageClientAuth, "kube-apiserver-kubelet-client", nil},
		{frontProxyClientBase, fpRoots, x509.ExtKeyUsageClientAuth, "front-proxy-client", nil},
		{adminBase, roots, x509.ExtKeyUsageClientAuth, "kubernetes-admin", []string{"system:masters"}},
		{controllerManagerBase, roots, x509.ExtKeyUsageClientAuth, "system:kube-controller-manager", nil},
		{schedulerBase, roots, x509.ExtKeyUsageClientAuth, "system:kube-scheduler", nil},
	} {
		cert, err := readCertFile(p.CertPath(c.base))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := cert.Verify(x509.VerifyOptions{Roots: c.roots, KeyUsages: []x509.ExtKeyUsage{c.usage}}); err != nil {
			t.Errorf("%s does not verify for its use: %v", c.base, err)
		}
		if cert.Subject.CommonName != c.cn || !slices.Equal(cert.Subject.Organization, c.orgs) {
			t.Errorf("%s subject = %v, want CN=%s O=%v", c.base, cert.Subject, c.cn, c.orgs)
		}
	}

	info, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode().Perm() != 0o700 {
		t.Errorf("pki folder mode = %v, want 0700", info.Mode().Perm())
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 2*8+2 {
		t.Errorf("pki has %d files, want 18 (8 certificate/key pairs and sa.key/sa.pub)", len(entries))
	}
	for _, e := range entries {
		info, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		if info.Mode().Perm() != 0o600 {
			t.Errorf("%s mode = %v, want 0600", e.Name(), info.Mode().Perm())
		}
	}
}

func TestNewPKIIsFreshEachTime(t *testing.T) {
	spec := PKISpec{ServiceIP: net.ParseIP("10.96.0.1"), DNSDomain: "cluster.local"}
	a, err := NewPKI(filepath.Join(t.TempDir(), "a"), spec)
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewPKI(filepath.Join(t.TempDir(), "b"), spec)
	if err != nil {
		t.Fatal(err)
	}
	if a.CA.Equal(b.CA) || a.CA.SerialNumber.Cmp(b.CA.SerialNumber) == 0 {
		t.Errorf("two PKIs share a CA or its serial")
	}
}
