package tunnel

import (
	"crypto/x509"
	"testing"
	"time"

	"k8s.io/client-go/tools/clientcmd"
	certutil "k8s.io/client-go/util/cert"
	"k8s.io/kubernetes/cmd/kubeadm/app/util/pkiutil"
)

func TestServerKubeconfig(t *testing.T) {
	caCert, caKey, err := pkiutil.NewCertificateAuthority(&pkiutil.CertConfig{Config: certutil.Config{CommonName: "kubernetes"}})
	if err != nil {
		t.Fatal(err)
	}
	notAfter := time.Now().Add(365 * 24 * time.Hour).Truncate(time.Second)
	b, err := ServerKubeconfig(caCert, caKey, "https://127.0.0.1:6443", notAfter)
	if err != nil {
		t.Fatal(err)
	}
	rc, err := clientcmd.RESTConfigFromKubeConfig(b)
	if err != nil {
		t.Fatal(err)
	}
	if rc.Host != "https://127.0.0.1:6443" {
		t.Errorf("server %s", rc.Host)
	}
	certs, err := certutil.ParseCertsPEM(rc.CertData)
	if err != nil {
		t.Fatal(err)
	}
	c := certs[0]
	if c.Subject.CommonName != ServerUser || len(c.Subject.Organization) != 0 {
		t.Errorf("subject %v: want CN %s and no groups", c.Subject, ServerUser)
	}
	if len(c.ExtKeyUsage) != 1 || c.ExtKeyUsage[0] != x509.ExtKeyUsageClientAuth {
		t.Errorf("usages %v", c.ExtKeyUsage)
	}
	if !c.NotAfter.Equal(notAfter) {
		t.Errorf("not after %v, want %v", c.NotAfter, notAfter)
	}
	roots := x509.NewCertPool()
	roots.AddCert(caCert)
	if _, err := c.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("the cluster CA does not vouch for the certificate: %v", err)
	}
	if len(rc.KeyData) == 0 || len(rc.CAData) == 0 {
		t.Error("no key or no CA in the kubeconfig")
	}
	if _, err := ServerKubeconfig(nil, nil, "https://127.0.0.1:6443", notAfter); err == nil {
		t.Error("no CA was accepted")
	}
}
