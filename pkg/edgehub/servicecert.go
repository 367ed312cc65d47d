package edgehub

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"path/filepath"
	"slices"
	"sync/atomic"
	"time"

	certificatesv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// Files of the in-cluster serving certificate, under Config.PKIDir(): the
// certificate the cluster CA signed for the kubernetes Service, and its key.
const (
	ServiceCertName = "kubernetes-service.crt"
	ServiceKeyName  = "kubernetes-service.key"
)

// ServiceCertUsages are the usages edgehub asks for; edge-controller's
// approver (pkg/edgecontroller) accepts exactly these.
var ServiceCertUsages = []certificatesv1.KeyUsage{
	certificatesv1.UsageDigitalSignature, certificatesv1.UsageKeyEncipherment, certificatesv1.UsageServerAuth,
}

// ServiceCSRPrefix starts the name of every CSR edgehub makes, so that a
// person listing CSRs knows whose they are.
const ServiceCSRPrefix = "edgehub-kubernetes-service-"

// serviceRenewAfter is the share of the certificate's life after which
// edgehub asks for a new one (the kubelet renews its own at 70-90 %): the
// rest is the margin for a link that is down when renewal is due.
const serviceRenewAfter = 0.7

// ServiceDNSNames are the names in-cluster clients may use for the
// apiserver: the kubernetes Service's in the default namespace.
func ServiceDNSNames(clusterDomain string) []string {
	return []string{"kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc." + clusterDomain}
}

// serviceCert is edgehub's serving certificate for the kubernetes Service,
// signed by the cluster CA (signer kubernetes.io/kubelet-serving) from a CSR
// edgehub makes as the node. The cluster CA key never comes near the node.
type serviceCert struct {
	dir, nodeName, clusterDomain string
	roots                        *x509.CertPool // the cluster CA

	cur  atomic.Pointer[tls.Certificate]
	leaf atomic.Pointer[x509.Certificate]
}

// load reads the certificate of an earlier run, so that it serves at once,
// offline too. A missing pair is not an error: hasCert stays false.
func (s *serviceCert) load() error {
	certPath, keyPath := filepath.Join(s.dir, ServiceCertName), filepath.Join(s.dir, ServiceKeyName)
	pair, err := tls.LoadX509KeyPair(certPath, keyPath)
	if err != nil {
		if !exists(certPath) || !exists(keyPath) {
			return nil
		}
		return fmt.Errorf("in-cluster serving certificate %s: %w (it is asked for again)", certPath, err)
	}
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return fmt.Errorf("parse %s: %w", certPath, err)
	}
	pair.Leaf = leaf
	s.cur.Store(&pair)
	s.leaf.Store(leaf)
	return nil
}

// current is the certificate being served, or nil.
func (s *serviceCert) current() *x509.Certificate { return s.leaf.Load() }

// getCertificate is for tls.Config.GetCertificate of the in-cluster face.
func (s *serviceCert) getCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	if c := s.cur.Load(); c != nil {
		return c, nil
	}
	return nil, errors.New("edgehub: no serving certificate for the kubernetes Service yet")
}

// serviceIPs are the Service IPs the current certificate is for.
func (s *serviceCert) serviceIPs() []netip.Addr {
	leaf := s.current()
	if leaf == nil {
		return nil
	}
	var out []netip.Addr
	for _, ip := range leaf.IPAddresses {
		if a, ok := netip.AddrFromSlice(ip); ok {
			out = append(out, a.Unmap())
		}
	}
	return out
}

// due says why a new certificate is needed (empty: none is): there is
// none, renewal time has come, or the Service's IPs are not the ones the
// certificate carries (ips nil: not known now, not checked).
func (s *serviceCert) due(now time.Time, ips []netip.Addr) string {
	leaf := s.current()
	if leaf == nil {
		return "no certificate yet"
	}
	life := leaf.NotAfter.Sub(leaf.NotBefore)
	if now.After(leaf.NotBefore.Add(time.Duration(float64(life) * serviceRenewAfter))) {
		return fmt.Sprintf("renewal due (valid until %s)", leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	if ips != nil && !sameAddrs(ips, s.serviceIPs()) {
		return fmt.Sprintf("the kubernetes Service's IPs are %v, the certificate's %v", ips, s.serviceIPs())
	}
	return ""
}

func sameAddrs(a, b []netip.Addr) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.SortFunc(a, func(x, y netip.Addr) int { return x.Compare(y) })
	slices.SortFunc(b, func(x, y netip.Addr) int { return x.Compare(y) })
	return slices.Equal(a, b)
}

// kubernetesServiceIPs reads the ClusterIPs of default/kubernetes.
func kubernetesServiceIPs(ctx context.Context, client kubernetes.Interface) ([]netip.Addr, error) {
	svc, err := client.CoreV1().Services(metav1.NamespaceDefault).Get(ctx, "kubernetes", metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("read the kubernetes Service: %w", err)
	}
	ips := svc.Spec.ClusterIPs
	if len(ips) == 0 && svc.Spec.ClusterIP != "" {
		ips = []string{svc.Spec.ClusterIP}
	}
	var out []netip.Addr
	for _, s := range ips {
		if s == corev1.ClusterIPNone {
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("the kubernetes Service has ClusterIP %q: %w", s, err)
		}
		out = append(out, a.Unmap())
	}
	if len(out) == 0 {
		return nil, errors.New("the kubernetes Service has no ClusterIP")
	}
	return out, nil
}

// newServiceCSR is the request for the node's kubernetes Service serving
// certificate: subject system:node:<node> in system:nodes (what the
// kubelet-serving signer requires), SANs the Service IPs and names.
func newServiceCSR(nodeName, clusterDomain string, ips []netip.Addr) ([]byte, *ecdsa.PrivateKey, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generate in-cluster serving key: %w", err)
	}
	var netIPs []net.IP
	for _, a := range ips {
		netIPs = append(netIPs, net.IP(a.AsSlice()))
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject:     pkix.Name{CommonName: "system:node:" + nodeName, Organization: []string{"system:nodes"}},
		DNSNames:    ServiceDNSNames(clusterDomain),
		IPAddresses: netIPs,
	}, key)
	if err != nil {
		return nil, nil, fmt.Errorf("make the in-cluster serving CSR: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}), key, nil
}

// csrPoll and csrWait bound the wait for the CSR to be approved and signed.
const (
	csrPoll = 2 * time.Second
	csrWait = 5 * time.Minute
)

// obtain asks the cluster for a certificate for ips, waits (bounded) until
// it is approved and signed, checks it, writes it (key 0600, folder 0700)
// and serves it from then on.
func (s *serviceCert) obtain(ctx context.Context, client kubernetes.Interface, ips []netip.Addr, now func() time.Time) error {
	csrPEM, key, err := newServiceCSR(s.nodeName, s.clusterDomain, ips)
	if err != nil {
		return err
	}
	csr, err := client.CertificatesV1().CertificateSigningRequests().Create(ctx, &certificatesv1.CertificateSigningRequest{
		ObjectMeta: metav1.ObjectMeta{GenerateName: ServiceCSRPrefix + s.nodeName + "-"},
		Spec: certificatesv1.CertificateSigningRequestSpec{
			Request: csrPEM, SignerName: certificatesv1.KubeletServingSignerName, Usages: ServiceCertUsages,
		},
	}, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("create the CSR for the kubernetes Service certificate: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, csrWait)
	defer cancel()
	var certPEM []byte
	for certPEM == nil {
		got, err := client.CertificatesV1().CertificateSigningRequests().Get(ctx, csr.Name, metav1.GetOptions{})
		if err == nil {
			for _, c := range got.Status.Conditions {
				if (c.Type == certificatesv1.CertificateDenied || c.Type == certificatesv1.CertificateFailed) && c.Status == corev1.ConditionTrue {
					return fmt.Errorf("CSR %s was %s: %s %s", csr.Name, c.Type, c.Reason, c.Message)
				}
			}
			if len(got.Status.Certificate) > 0 {
				certPEM = got.Status.Certificate
				break
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("CSR %s not signed within %s (edge-controller approves it; is it running, and is the node labelled as an edge node?): %w", csr.Name, csrWait, ctx.Err())
		case <-time.After(csrPoll):
		}
	}
	leaf, err := s.verify(certPEM, key, ips, now())
	if err != nil {
		return fmt.Errorf("CSR %s: %w", csr.Name, err)
	}
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return err
	}
	// The key first: a certificate on disk without its key would fail the
	// next load, a key without its certificate is asked for again.
	if err := writeFileAtomic(filepath.Join(s.dir, ServiceKeyName), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		return err
	}
	if err := writeFileAtomic(filepath.Join(s.dir, ServiceCertName), certPEM, 0o644); err != nil {
		return err
	}
	pair, err := tls.X509KeyPair(certPEM, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}))
	if err != nil {
		return err
	}
	pair.Leaf = leaf
	s.cur.Store(&pair)
	s.leaf.Store(leaf)
	return nil
}

// verify checks that certPEM is for key, chains to the cluster CA for
// server auth and carries every Service IP: what the pods will check.
func (s *serviceCert) verify(certPEM []byte, key *ecdsa.PrivateKey, ips []netip.Addr, now time.Time) (*x509.Certificate, error) {
	block, rest := pem.Decode(certPEM)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, errors.New("the issued certificate is not PEM")
	}
	leaf, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parse the issued certificate: %w", err)
	}
	pub, ok := leaf.PublicKey.(*ecdsa.PublicKey)
	if !ok || !pub.Equal(key.Public()) {
		return nil, errors.New("the issued certificate is not for the key edgehub made")
	}
	inter := x509.NewCertPool()
	for {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			break
		}
		if c, err := x509.ParseCertificate(b.Bytes); err == nil {
			inter.AddCert(c)
		}
	}
	for _, ip := range ips {
		if _, err := leaf.Verify(x509.VerifyOptions{DNSName: ip.String(), Roots: s.roots, Intermediates: inter, CurrentTime: now,
			KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
			return nil, fmt.Errorf("the issued certificate does not verify for %s against the cluster CA: %w", ip, err)
		}
	}
	return leaf, nil
}

// errNoNodeCredentials: the kubelet has not finished TLS bootstrap yet.
var errNoNodeCredentials = fmt.Errorf("the node has no client certificate yet: %w", fs.ErrNotExist)
