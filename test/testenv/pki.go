package testenv

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// Names of the PKI files in a control plane's pki folder. They follow kubeadm's
// /etc/kubernetes/pki layout, so code that reads a kubeadm cluster's files finds
// the same names here.
const (
	caBase                = "ca"
	apiserverBase         = "apiserver"
	apiserverKubeletBase  = "apiserver-kubelet-client"
	frontProxyCABase      = "front-proxy-ca"
	frontProxyClientBase  = "front-proxy-client"
	serviceAccountBase    = "sa"
	adminBase             = "admin"
	controllerManagerBase = "controller-manager"
	schedulerBase         = "scheduler"
)

// certValidity is long enough for any test run and short enough to be obviously
// test material.
const certValidity = 48 * time.Hour

// PKI is the key material of one control plane: every certificate and key the
// apiserver, controller-manager, scheduler and an administrator need.
type PKI struct {
	// Dir is the folder holding <name>.crt / <name>.key (and sa.key / sa.pub).
	Dir string

	CA           *x509.Certificate
	CAKey        crypto.Signer
	FrontProxyCA *x509.Certificate
	// APIServer is the serving certificate; see APIServerSANs for what it names.
	APIServer *x509.Certificate
}

// PKISpec is what the generated PKI depends on.
type PKISpec struct {
	ServiceIP net.IP
	DNSDomain string
}

// APIServerSANs is the exact subject alternative name list of the apiserver
// serving certificate: the in-cluster names and addresses, and nothing else. In
// particular not the public address edge hosts dial, which is the situation
// edgeadm exists for.
func APIServerSANs(spec PKISpec) (dns []string, ips []net.IP) {
	dns = []string{
		"kubernetes",
		"kubernetes.default",
		"kubernetes.default.svc",
		"kubernetes.default.svc." + spec.DNSDomain,
	}
	ips = []net.IP{spec.ServiceIP, net.IPv4(127, 0, 0, 1)}
	return dns, ips
}

// certSpec says what one leaf certificate is.
type certSpec struct {
	base   string
	cn     string
	orgs   []string
	usages []x509.ExtKeyUsage
	dns    []string
	ips    []net.IP
}

// NewPKI generates a fresh PKI with crypto/rand into dir, which it creates with
// mode 0700; every file is 0600. Keys are ECDSA P-256: quick to make, accepted
// everywhere Kubernetes takes a key (kubeadm's "ECDSA-P256" algorithm).
func NewPKI(dir string, spec PKISpec) (*PKI, error) {
	if spec.ServiceIP == nil || spec.DNSDomain == "" {
		return nil, fmt.Errorf("generate PKI: service IP and DNS domain are required")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("generate PKI: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, fmt.Errorf("generate PKI: %w", err)
	}
	p := &PKI{Dir: dir}
	var err error
	if p.CA, p.CAKey, err = p.newCA(caBase, "kubernetes"); err != nil {
		return nil, err
	}
	var fpKey crypto.Signer
	if p.FrontProxyCA, fpKey, err = p.newCA(frontProxyCABase, "front-proxy-ca"); err != nil {
		return nil, err
	}
	dns, ips := APIServerSANs(spec)
	leaves := []struct {
		spec   certSpec
		ca     *x509.Certificate
		caKey  crypto.Signer
		target **x509.Certificate
	}{
		{certSpec{base: apiserverBase, cn: "kube-apiserver", usages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, dns: dns, ips: ips}, p.CA, p.CAKey, &p.APIServer},
		{certSpec{base: apiserverKubeletBase, cn: "kube-apiserver-kubelet-client", usages: clientAuth}, p.CA, p.CAKey, nil},
		{certSpec{base: frontProxyClientBase, cn: "front-proxy-client", usages: clientAuth}, p.FrontProxyCA, fpKey, nil},
		{certSpec{base: adminBase, cn: "kubernetes-admin", orgs: []string{"system:masters"}, usages: clientAuth}, p.CA, p.CAKey, nil},
		{certSpec{base: controllerManagerBase, cn: "system:kube-controller-manager", usages: clientAuth}, p.CA, p.CAKey, nil},
		{certSpec{base: schedulerBase, cn: "system:kube-scheduler", usages: clientAuth}, p.CA, p.CAKey, nil},
	}
	for _, l := range leaves {
		cert, err := p.newLeaf(l.spec, l.ca, l.caKey)
		if err != nil {
			return nil, err
		}
		if l.target != nil {
			*l.target = cert
		}
	}
	if err := p.newServiceAccountKey(); err != nil {
		return nil, err
	}
	return p, nil
}

var clientAuth = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}

// CertPath and KeyPath name the files of one certificate by its base name.
func (p *PKI) CertPath(base string) string { return filepath.Join(p.Dir, base+".crt") }

// KeyPath is the private key file of a base name.
func (p *PKI) KeyPath(base string) string { return filepath.Join(p.Dir, base+".key") }

// CAPEM is the cluster CA certificate in PEM.
func (p *PKI) CAPEM() []byte { return encodeCert(p.CA) }

func (p *PKI) newCA(base, cn string) (*x509.Certificate, crypto.Signer, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generate %s key: %w", base, err)
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             now.Add(-time.Minute),
		NotAfter:              now.Add(certValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, nil, fmt.Errorf("sign %s: %w", base, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, err
	}
	if err := p.writeCertAndKey(base, cert, key); err != nil {
		return nil, nil, err
	}
	return cert, key, nil
}

func (p *PKI) newLeaf(s certSpec, ca *x509.Certificate, caKey crypto.Signer) (*x509.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate %s key: %w", s.base, err)
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: s.cn, Organization: s.orgs},
		NotBefore:    now.Add(-time.Minute),
		NotAfter:     now.Add(certValidity),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:  s.usages,
		DNSNames:     s.dns,
		IPAddresses:  s.ips,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, key.Public(), caKey)
	if err != nil {
		return nil, fmt.Errorf("sign %s: %w", s.base, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return cert, p.writeCertAndKey(s.base, cert, key)
}

// newServiceAccountKey writes sa.key and sa.pub, the key pair that signs and
// verifies service account tokens.
func (p *PKI) newServiceAccountKey() error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("generate service account key: %w", err)
	}
	keyPEM, err := encodeKey(key)
	if err != nil {
		return err
	}
	pubDER, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		return err
	}
	if err := writeSecretFile(p.KeyPath(serviceAccountBase), keyPEM); err != nil {
		return err
	}
	return writeSecretFile(filepath.Join(p.Dir, serviceAccountBase+".pub"), pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}))
}

func (p *PKI) writeCertAndKey(base string, cert *x509.Certificate, key *ecdsa.PrivateKey) error {
	keyPEM, err := encodeKey(key)
	if err != nil {
		return err
	}
	if err := writeSecretFile(p.CertPath(base), encodeCert(cert)); err != nil {
		return err
	}
	return writeSecretFile(p.KeyPath(base), keyPEM)
}

func encodeCert(cert *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw})
}

func encodeKey(key *ecdsa.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encode key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), nil
}

func randomSerial() (*big.Int, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("generate certificate serial: %w", err)
	}
	return serial.Add(serial, big.NewInt(1)), nil
}

// writeSecretFile writes data readable by its owner only.
func writeSecretFile(path string, data []byte) error {
	if err := os.WriteFile(path, data, 0o600); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	// WriteFile keeps the mode of an existing file; make sure.
	if err := os.Chmod(path, 0o600); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// readCertFile reads one PEM certificate file.
func readCertFile(path string) (*x509.Certificate, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("%s: no PEM certificate", path)
	}
	return x509.ParseCertificate(block.Bytes)
}
