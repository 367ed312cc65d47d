package token

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"os"
	"path/filepath"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	certutil "k8s.io/client-go/util/cert"
	"k8s.io/kubernetes/cmd/kubeadm/app/util/pubkeypin"

	"github.com/edgeadm/edgeadm/pkg/state"
)

// testCA is a self-signed CA: its PEM and its kubeadm pin.
type testCA struct {
	pem  []byte
	pin  string
	cert *x509.Certificate
}

func newTestCA(t *testing.T, name string) testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := certutil.NewSelfSignedCACert(certutil.Config{CommonName: name}, key)
	if err != nil {
		t.Fatal(err)
	}
	p, err := certutil.EncodeCertificates(cert)
	if err != nil {
		t.Fatal(err)
	}
	return testCA{pem: p, pin: pubkeypin.Hash(cert), cert: cert}
}

func (ca testCA) file(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "ca.crt")
	if err := os.WriteFile(p, ca.pem, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// clusterInfoKubeconfig is what kubeadm puts in cluster-info.
func clusterInfoKubeconfig(t *testing.T, ca testCA, server string) string {
	t.Helper()
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters[""] = &clientcmdapi.Cluster{Server: server, CertificateAuthorityData: ca.pem}
	b, err := clientcmd.Write(*cfg)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func clusterInfo(t *testing.T, ca testCA) *corev1.ConfigMap {
	return &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "cluster-info", Namespace: "kube-public"},
		Data:       map[string]string{"kubeconfig": clusterInfoKubeconfig(t, ca, "https://kubernetes.default:6443")},
	}
}

func edgeadmRecord(t *testing.T, cfg string) *corev1.ConfigMap {
	return &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: state.Name, Namespace: state.Namespace},
		Data:       map[string]string{state.ConfigKey: cfg},
	}
}

type fixture struct {
	client *fake.Clientset
	warn   bytes.Buffer
	ca     testCA
	rest   *rest.Config
}

func newFixture(t *testing.T, objs ...runtime.Object) *fixture {
	t.Helper()
	f := &fixture{ca: newTestCA(t, "kubernetes")}
	f.client = fake.NewClientset(objs...)
	f.rest = &rest.Config{Host: "https://127.0.0.1:16443", TLSClientConfig: rest.TLSClientConfig{CAData: f.ca.pem}}
	return f
}

func (f *fixture) cluster() Cluster {
	return Cluster{Client: f.client, REST: f.rest, Warn: &f.warn}
}

func (f *fixture) configMap(t *testing.T, ns, name string) *corev1.ConfigMap {
	t.Helper()
	obj, err := f.client.Tracker().Get(corev1.SchemeGroupVersion.WithResource("configmaps"), ns, name)
	if err != nil {
		t.Fatalf("get %s/%s: %v", ns, name, err)
	}
	return obj.(*corev1.ConfigMap)
}

func (f *fixture) secrets(t *testing.T) []corev1.Secret {
	t.Helper()
	obj, err := f.client.Tracker().List(corev1.SchemeGroupVersion.WithResource("secrets"),
		corev1.SchemeGroupVersion.WithKind("Secret"), "kube-system")
	if err != nil {
		t.Fatal(err)
	}
	return obj.(*corev1.SecretList).Items
}

// writes lists the mutating actions sent to the fake cluster.
func (f *fixture) writes() []string {
	var out []string
	for _, a := range f.client.Actions() {
		switch a.GetVerb() {
		case "get", "list", "watch":
		default:
			out = append(out, a.GetVerb()+" "+a.GetResource().Resource)
		}
	}
	return out
}
