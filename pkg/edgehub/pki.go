package edgehub

import (
	"bytes"
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
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// Files of edgehub's local serving PKI, under Config.PKIDir(). Join reads
// CAFileName to write the kubelet's kubeconfig for https://127.0.0.1:10261.
const (
	CAFileName      = "ca.crt"
	CAKeyFileName   = "ca.key"
	ServingCertName = "serving.crt"
	ServingKeyName  = "serving.key"
)

// pkiValidity is long: the CA and its certificate only ever serve on the
// loopback of one host, and a local certificate expiring offline would cut
// the kubelet off exactly when edgehub matters.
const pkiValidity = 10 * 365 * 24 * time.Hour

// renewBefore: a serving certificate closer than this to its end is
// re-issued at start.
const renewBefore = 30 * 24 * time.Hour

// EnsurePKI creates edgehub's local CA and the serving certificate for
// 127.0.0.1, ::1 and localhost in dir, unless they exist and are valid.
// It is idempotent: a second call changes nothing. Keys are ECDSA P-256
// from crypto/rand, written 0600 in a 0700 folder.
func EnsurePKI(dir string, now time.Time) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return fmt.Errorf("restrict %s: %w", dir, err)
	}
	ca, caKey, err := loadPair(filepath.Join(dir, CAFileName), filepath.Join(dir, CAKeyFileName))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if exists(filepath.Join(dir, CAFileName)) || exists(filepath.Join(dir, CAKeyFileName)) {
			return fmt.Errorf("%s holds only half of edgehub's CA (%s, %s): remove both and run edgehub init again", dir, CAFileName, CAKeyFileName)
		}
		ca, caKey, err = newCA(now)
		if err != nil {
			return err
		}
		// The key first: a certificate without its key would be a half state.
		if err := writeFileAtomic(filepath.Join(dir, CAKeyFileName), encodeKey(caKey), 0o600); err != nil {
			return err
		}
		if err := writeFileAtomic(filepath.Join(dir, CAFileName), encodeCert(ca), 0o644); err != nil {
			return err
		}
	case err != nil:
		return fmt.Errorf("edgehub CA in %s: %w", dir, err)
	}
	cert, _, err := loadPair(filepath.Join(dir, ServingCertName), filepath.Join(dir, ServingKeyName))
	if err == nil && cert.CheckSignatureFrom(ca) == nil && now.Add(renewBefore).Before(cert.NotAfter) {
		return nil
	}
	cert, key, err := newServing(ca, caKey, now)
	if err != nil {
		return err
	}
	if err := writeFileAtomic(filepath.Join(dir, ServingKeyName), encodeKey(key), 0o600); err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(dir, ServingCertName), encodeCert(cert), 0o644)
}

// LoadServingCertificate loads the serving certificate EnsurePKI made.
func LoadServingCertificate(dir string) (tls.Certificate, error) {
	c, err := tls.LoadX509KeyPair(filepath.Join(dir, ServingCertName), filepath.Join(dir, ServingKeyName))
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("edgehub serving certificate in %s (run edgehub init): %w", dir, err)
	}
	return c, nil
}

func newCA(now time.Time) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generate edgehub CA key: %w", err)
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, nil, err
	}
	host, _ := os.Hostname()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "edgehub-local-ca@" + host},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(pkiValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, nil, fmt.Errorf("sign edgehub CA: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	return cert, key, err
}

func newServing(ca *x509.Certificate, caKey *ecdsa.PrivateKey, now time.Time) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generate edgehub serving key: %w", err)
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "edgehub"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(pkiValidity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1"), net.IPv6loopback},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, key.Public(), caKey)
	if err != nil {
		return nil, nil, fmt.Errorf("sign edgehub serving certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	return cert, key, err
}

// loadPair returns fs.ErrNotExist (wrapped) when either file is missing.
func loadPair(certPath, keyPath string) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	pair, err := tls.LoadX509KeyPair(certPath, keyPath)
	if err != nil {
		if !exists(certPath) || !exists(keyPath) {
			return nil, nil, fmt.Errorf("%w: %s or %s", fs.ErrNotExist, certPath, keyPath)
		}
		return nil, nil, fmt.Errorf("load %s: %w", certPath, err)
	}
	key, ok := pair.PrivateKey.(*ecdsa.PrivateKey)
	if !ok {
		return nil, nil, fmt.Errorf("%s: not an ECDSA key", keyPath)
	}
	cert, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return nil, nil, fmt.Errorf("parse %s: %w", certPath, err)
	}
	return cert, key, nil
}

func randomSerial() (*big.Int, error) {
	s, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("random serial: %w", err)
	}
	return s, nil
}

func encodeCert(c *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
}

func encodeKey(k *ecdsa.PrivateKey) []byte {
	der, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		panic(err) // only for keys not on a named curve; ours always are
	}
	return pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der})
}

func exists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}

// writeFileAtomic writes data with perm through a temporary file and a
// rename, so a crash never leaves a half-written key or certificate.
func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, data) {
		return os.Chmod(path, perm)
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
