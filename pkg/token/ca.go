package token

import (
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	certutil "k8s.io/client-go/util/cert"
	"k8s.io/klog/v2"
	"k8s.io/kubernetes/cmd/kubeadm/app/util/pubkeypin"
)

// caSource is one place the cluster CA was found.
type caSource struct {
	name  string
	certs []*x509.Certificate
}

func (s caSource) hashes() []string {
	out := make([]string, 0, len(s.certs))
	seen := map[string]bool{}
	for _, c := range s.certs {
		h := pubkeypin.Hash(c)
		if !seen[h] {
			seen[h] = true
			out = append(out, h)
		}
	}
	return out
}

// Hashes returns kubeadm's "sha256:<hex of the SubjectPublicKeyInfo>" pin of
// every certificate in the PEM data.
func Hashes(pemData []byte) ([]string, error) {
	certs, err := certutil.ParseCertsPEM(pemData)
	if err != nil {
		return nil, err
	}
	return caSource{certs: certs}.hashes(), nil
}

// caFromFile reads the CA at path. A path the user did not choose explicitly
// is skipped when it does not exist or cannot be read (edgeadm may run away
// from a control plane node, or without root).
func caFromFile(path string, explicit bool) (caSource, error) {
	src := caSource{name: "--ca.cert " + path}
	if path == "" {
		return src, nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		if !explicit && (errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrPermission)) {
			klog.V(1).Infof("[token] no CA at %s (%v); looking elsewhere", path, err)
			return caSource{}, nil
		}
		return src, fmt.Errorf("read the cluster CA %s: %w: pass --ca.cert with the cluster CA certificate", path, err)
	}
	src.certs, err = certutil.ParseCertsPEM(data)
	if err != nil {
		return src, fmt.Errorf("the cluster CA %s: %w: pass --ca.cert with a PEM certificate", path, err)
	}
	return src, nil
}

// caFromRESTConfig reads the CA the kubeconfig trusts, if it names one.
func caFromRESTConfig(cfg *rest.Config) (caSource, error) {
	src := caSource{name: "the kubeconfig"}
	data := cfg.TLSClientConfig.CAData
	if len(data) == 0 && cfg.TLSClientConfig.CAFile != "" {
		var err error
		if data, err = os.ReadFile(cfg.TLSClientConfig.CAFile); err != nil {
			return src, fmt.Errorf("read the kubeconfig's certificate-authority %s: %w", cfg.TLSClientConfig.CAFile, err)
		}
		src.name = "the kubeconfig's certificate-authority " + cfg.TLSClientConfig.CAFile
	}
	if len(data) == 0 {
		return caSource{}, nil
	}
	certs, err := certutil.ParseCertsPEM(data)
	if err != nil {
		return src, fmt.Errorf("the CA in %s: %w", src.name, err)
	}
	src.certs = certs
	return src, nil
}

// caFromClusterInfo reads the CA in cluster-info's kubeconfig.
func caFromClusterInfo(kubeconfig string) (caSource, error) {
	src := caSource{name: "kube-public/cluster-info"}
	cfg, err := clientcmd.Load([]byte(kubeconfig))
	if err != nil {
		return src, fmt.Errorf("the kubeconfig in kube-public/cluster-info does not parse: %w", err)
	}
	for _, c := range cfg.Clusters {
		if len(c.CertificateAuthorityData) == 0 {
			continue
		}
		certs, err := certutil.ParseCertsPEM(c.CertificateAuthorityData)
		if err != nil {
			return src, fmt.Errorf("the CA in kube-public/cluster-info: %w", err)
		}
		src.certs = append(src.certs, certs...)
	}
	if len(src.certs) == 0 {
		return src, errors.New("kube-public/cluster-info holds no CA: edge nodes could not verify the cluster; fix it or run edgeadm addon edge-apps")
	}
	return src, nil
}

// caPins chooses the pins to print from the CA sources, in order of
// preference (the first present one wins), and fails when two present
// sources share no certificate: a join with the printed hash would then fail
// on the edge host, or trust the wrong CA. When cluster-info is among them,
// only pins of certificates it also carries are printed, since those are the
// ones discovery checks.
func caPins(sources ...caSource) ([]string, error) {
	var present []caSource
	for _, s := range sources {
		if len(s.certs) > 0 {
			present = append(present, s)
		}
	}
	if len(present) == 0 {
		return nil, errors.New("found no cluster CA: pass --ca.cert with the cluster CA certificate")
	}
	chosen := present[0]
	pins := chosen.hashes()
	for _, other := range present[1:] {
		common := intersect(pins, other.hashes())
		if len(common) == 0 {
			return nil, fmt.Errorf("the cluster CA from %s (%s) is not the one in %s (%s): "+
				"edge nodes would not trust this cluster; fix whichever is stale, or pass --ca.cert with the right CA",
				chosen.name, strings.Join(chosen.hashes(), ","), other.name, strings.Join(other.hashes(), ","))
		}
		if other.name == "kube-public/cluster-info" {
			pins = common
		}
	}
	return pins, nil
}

func intersect(a, b []string) []string {
	in := map[string]bool{}
	for _, x := range b {
		in[x] = true
	}
	var out []string
	for _, x := range a {
		if in[x] {
			out = append(out, x)
		}
	}
	return out
}
