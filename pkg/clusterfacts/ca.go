package clusterfacts

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"time"

	"k8s.io/client-go/tools/clientcmd"
	certutil "k8s.io/client-go/util/cert"
	bootstrapapi "k8s.io/cluster-bootstrap/token/api"
	"k8s.io/kubernetes/cmd/kubeadm/app/util/pubkeypin"
)

// ErrUnreachable marks a failure to reach the apiserver at all.
var ErrUnreachable = errors.New("cannot reach the apiserver")

// Unreachable wraps err, met while first contacting host.
func Unreachable(host string, err error) error {
	return fmt.Errorf("%w at %s: %v: check that it runs and that the kubeconfig's server address is right", ErrUnreachable, host, err)
}

// learnCA picks the CA, in order: --ca.cert if readable, the kubeconfig's CA,
// cluster-info's CA; and checks that it signs the apiserver's certificate.
func learnCA(ctx context.Context, in Inputs, s *snap, f *Facts) error {
	type candidate struct {
		source string
		pem    []byte
	}
	var cands []candidate
	if in.CACertPath != "" {
		if b, err := os.ReadFile(in.CACertPath); err == nil {
			cands = append(cands, candidate{"--ca.cert " + in.CACertPath, b})
		} else {
			f.warnf("CA certificate %s is not readable (%v); using the next source", in.CACertPath, err)
		}
	}
	if len(in.RESTConfig.CAData) > 0 {
		cands = append(cands, candidate{"the kubeconfig's certificate-authority-data", in.RESTConfig.CAData})
	} else if in.RESTConfig.CAFile != "" {
		if b, err := os.ReadFile(in.RESTConfig.CAFile); err == nil {
			cands = append(cands, candidate{"the kubeconfig's certificate-authority " + in.RESTConfig.CAFile, b})
		}
	}
	if ci := s.clusterInfo; ci != nil {
		if cfg, err := clientcmd.Load([]byte(ci.Data[bootstrapapi.KubeConfigKey])); err == nil {
			for _, c := range cfg.Clusters {
				if len(c.CertificateAuthorityData) > 0 {
					cands = append(cands, candidate{"kube-public/cluster-info", c.CertificateAuthorityData})
					break
				}
			}
		}
	}
	if len(cands) == 0 {
		return fmt.Errorf("no cluster CA certificate found: --ca.cert %q is not readable and the kubeconfig carries none: pass --ca.cert", in.CACertPath)
	}
	chain, chainErr := servingCert(ctx, in)
	if chainErr != nil {
		return Unreachable(in.RESTConfig.Host, chainErr)
	}
	leaf := chain[0]
	f.CertDNSNames = leaf.DNSNames
	for _, ip := range leaf.IPAddresses {
		f.CertIPs = append(f.CertIPs, ip.String())
	}
	c := cands[0]
	certs, err := certutil.ParseCertsPEM(c.pem)
	if err != nil || len(certs) == 0 {
		return fmt.Errorf("CA certificate from %s does not parse (%v): pass a PEM CA certificate with --ca.cert", c.source, err)
	}
	ca, err := signerOf(leaf, chain[1:], certs)
	if err != nil {
		return fmt.Errorf("CA certificate from %s did not sign the apiserver's certificate (%v): pass this cluster's CA with --ca.cert", c.source, err)
	}
	f.CA = ca
	f.CAPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Raw})
	f.CASource = c.source
	f.CAHash = pubkeypin.Hash(ca)
	return nil
}

// signerOf returns the certificate among roots that the leaf chains to.
func signerOf(leaf *x509.Certificate, intermediates, roots []*x509.Certificate) (*x509.Certificate, error) {
	inter := x509.NewCertPool()
	for _, c := range intermediates {
		inter.AddCert(c)
	}
	var lastErr error
	for _, root := range roots {
		pool := x509.NewCertPool()
		pool.AddCert(root)
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, Intermediates: inter}); err != nil {
			lastErr = err
			continue
		}
		return root, nil
	}
	return nil, lastErr
}

// servingCert returns the apiserver's certificate chain as served.
func servingCert(ctx context.Context, in Inputs) ([]*x509.Certificate, error) {
	if in.ServingCert != nil {
		return in.ServingCert(ctx)
	}
	u, err := url.Parse(in.RESTConfig.Host)
	if err != nil {
		return nil, err
	}
	host := u.Host
	if u.Port() == "" {
		host = net.JoinHostPort(u.Hostname(), "443")
	}
	d := &tls.Dialer{
		NetDialer: &net.Dialer{Timeout: 10 * time.Second},
		// Only to read the certificate: it is verified against the chosen
		// CA right after, and nothing is sent over this connection.
		Config: &tls.Config{InsecureSkipVerify: true, ServerName: in.RESTConfig.ServerName}, //nolint:gosec
	}
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, err := d.DialContext(dctx, "tcp", host)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	chain := conn.(*tls.Conn).ConnectionState().PeerCertificates
	if len(chain) == 0 {
		return nil, errors.New("the apiserver presented no certificate")
	}
	return chain, nil
}

// SameCert reports whether PEM a holds the certificate c.
func SameCert(a []byte, c *x509.Certificate) bool {
	certs, err := certutil.ParseCertsPEM(a)
	if err != nil {
		return false
	}
	for _, x := range certs {
		if bytes.Equal(x.Raw, c.Raw) {
			return true
		}
	}
	return false
}
