package tunnel

import (
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/tools/clientcmd"
	certutil "k8s.io/client-go/util/cert"
	"k8s.io/client-go/util/keyutil"
	kubeadmconstants "k8s.io/kubernetes/cmd/kubeadm/app/constants"
	"sigs.k8s.io/yaml"
)

// ManagedByLabel marks the proxy server's static pod as edgeadm's, so
// that detach removes only a file it wrote.
const (
	ManagedByLabel = "app.kubernetes.io/managed-by"
	ManagedByValue = "edgeadm"
)

// kubeconfigRenewBefore: a server kubeconfig whose certificate expires
// sooner than this is signed again; a fresher one is kept, so that running
// addon twice changes nothing.
const kubeconfigRenewBefore = 90 * 24 * time.Hour

// LocalAPIServer is what this master's kube-apiserver manifest says about
// it: present, and the endpoint kubeadm advertises for it (the annotation
// the mirror pod carries too, which tells which node this master is).
type LocalAPIServer struct {
	Present  bool
	Endpoint string
	Manifest []byte
}

// ReadLocalAPIServer reads this master's kube-apiserver manifest. A missing
// manifest is not an error: Present is false.
func (m Master) ReadLocalAPIServer() (LocalAPIServer, error) {
	b, err := os.ReadFile(m.path(m.Paths.APIServerManifest()))
	if errors.Is(err, fs.ErrNotExist) {
		return LocalAPIServer{}, nil
	}
	if err != nil {
		return LocalAPIServer{}, fmt.Errorf("read %s: %w: run edgeadm as root on the master", m.Paths.APIServerManifest(), err)
	}
	pod := &corev1.Pod{}
	if err := yaml.Unmarshal(b, pod); err != nil {
		return LocalAPIServer{}, fmt.Errorf("%s does not parse (%v): configure the egress selector by hand (docs/tunnel.md) or run addon with --tunnel=false", m.Paths.APIServerManifest(), err)
	}
	return LocalAPIServer{Present: true, Manifest: b,
		Endpoint: pod.Annotations[kubeadmconstants.KubeAPIServerAdvertiseAddressEndpointAnnotationKey]}, nil
}

// CA reads the cluster CA of this master, which signs the proxy server's
// client certificate.
func (m Master) CA() (*x509.Certificate, crypto.Signer, error) {
	certPath := m.path(m.Paths.PKIDir + "/" + kubeadmconstants.CACertName)
	keyPath := m.path(m.Paths.PKIDir + "/" + kubeadmconstants.CAKeyName)
	certs, err := certutil.CertsFromFile(certPath)
	if err != nil {
		return nil, nil, fmt.Errorf("the cluster CA certificate %s/%s cannot be read (%v): run addon as root on a kubeadm master, or with --tunnel=false",
			m.Paths.PKIDir, kubeadmconstants.CACertName, err)
	}
	key, err := keyutil.PrivateKeyFromFile(keyPath)
	if err != nil {
		return nil, nil, fmt.Errorf("the cluster CA key %s/%s cannot be read (%v): the proxy server's client certificate is signed with it; run addon as root on a master that holds it (an external CA cannot be used), or with --tunnel=false",
			m.Paths.PKIDir, kubeadmconstants.CAKeyName, err)
	}
	signer, ok := key.(crypto.Signer)
	type equaler interface{ Equal(crypto.PublicKey) bool }
	if pub, pok := signer.Public().(equaler); !ok || !pok || !pub.Equal(certs[0].PublicKey) {
		return nil, nil, fmt.Errorf("%s/%s does not match %s/%s: fix the master's PKI, or run addon with --tunnel=false",
			m.Paths.PKIDir, kubeadmconstants.CAKeyName, m.Paths.PKIDir, kubeadmconstants.CACertName)
	}
	return certs[0], signer, nil
}

// ServerKubeconfigCurrent says whether the proxy server's kubeconfig on
// this master is one edgeadm can keep: its certificate is for ServerUser,
// signed by ca, and valid for a while yet.
func (m Master) ServerKubeconfigCurrent(ca *x509.Certificate, now time.Time) bool {
	cfg, err := clientcmd.LoadFromFile(m.path(m.Paths.ServerKubeconfig))
	if err != nil {
		return false
	}
	for _, ai := range cfg.AuthInfos {
		certs, err := certutil.ParseCertsPEM(ai.ClientCertificateData)
		if err != nil || len(certs) == 0 {
			return false
		}
		c := certs[0]
		if c.Subject.CommonName != ServerUser || c.CheckSignatureFrom(ca) != nil || c.NotAfter.Before(now.Add(kubeconfigRenewBefore)) {
			return false
		}
		return true
	}
	return false
}

// WriteServer writes the proxy server's kubeconfig (when given; 0600) and
// its static pod (0600) on this master. It returns whether a file changed.
func (m Master) WriteServer(kubeconfig, serverPod []byte) (changed bool, err error) {
	p := m.Paths
	if kubeconfig != nil {
		if err := writeFileAtomic(m.path(p.ServerKubeconfig), kubeconfig, 0o600, 0o700); err != nil {
			return false, fmt.Errorf("write %s: %w", p.ServerKubeconfig, err)
		}
		changed = true
	}
	cur, err := os.ReadFile(m.path(p.ServerManifest()))
	if err == nil && string(cur) == string(serverPod) {
		return changed, nil
	}
	if err == nil && !ownServerPod(cur) {
		return changed, fmt.Errorf("%s exists and was not written by edgeadm: move it away, or run addon with --tunnel=false", p.ServerManifest())
	}
	if err := writeFileAtomic(m.path(p.ServerManifest()), serverPod, 0o600, 0o700); err != nil {
		return changed, fmt.Errorf("write %s: %w", p.ServerManifest(), err)
	}
	return true, nil
}

// HasServer says whether this master runs edgeadm's proxy server pod.
func (m Master) HasServer() bool {
	b, err := os.ReadFile(m.path(m.Paths.ServerManifest()))
	return err == nil && ownServerPod(b)
}

// RemoveServer removes the proxy server's static pod (only edgeadm's) and
// its kubeconfig. It returns whether anything was removed.
func (m Master) RemoveServer() (changed bool, err error) {
	p := m.Paths
	if b, err := os.ReadFile(m.path(p.ServerManifest())); err == nil {
		if !ownServerPod(b) {
			return false, fmt.Errorf("%s was not written by edgeadm (no label %s=%s): remove it yourself if it is the tunnel's", p.ServerManifest(), ManagedByLabel, ManagedByValue)
		}
		if err := os.Remove(m.path(p.ServerManifest())); err != nil {
			return false, err
		}
		changed = true
	}
	if _, err := os.Stat(m.path(p.ServerKubeconfig)); err == nil {
		if err := os.Remove(m.path(p.ServerKubeconfig)); err != nil {
			return changed, err
		}
		changed = true
	}
	for _, d := range []string{p.UDSDir, filepath.Dir(p.ServerKubeconfig)} {
		if d != "/etc/kubernetes" {
			_ = os.Remove(m.path(d)) // only when empty
		}
	}
	return changed, nil
}

func ownServerPod(b []byte) bool {
	pod := &corev1.Pod{}
	return yaml.Unmarshal(b, pod) == nil && pod.Labels[ManagedByLabel] == ManagedByValue
}
