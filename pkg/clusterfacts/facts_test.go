package clusterfacts

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/rest"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"k8s.io/utils/ptr"
)

type pki struct {
	ca, leaf *x509.Certificate
	caPEM    []byte
}

func newPKI(t *testing.T, cn string, dnsNames ...string) pki {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	leafKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	leafTmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "kube-apiserver"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		DNSNames: dnsNames, IPAddresses: []net.IP{net.ParseIP("10.96.0.1")},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, KeyUsage: x509.KeyUsageDigitalSignature}
	leafDER, err := x509.CreateCertificate(rand.Reader, leafTmpl, ca, &leafKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(leafDER)
	return pki{ca: ca, leaf: leaf, caPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})}
}

func (p pki) inputs(c *fake.Clientset) Inputs {
	return Inputs{
		Client:      c,
		RESTConfig:  &rest.Config{Host: "https://198.18.0.2:6443", TLSClientConfig: rest.TLSClientConfig{CAData: p.caPEM}},
		CACertPath:  "/nonexistent/ca.crt",
		ServingCert: func(context.Context) ([]*x509.Certificate, error) { return []*x509.Certificate{p.leaf}, nil },
	}
}

func kubernetesSvc(ip string, targetPort int) *corev1.Service {
	return &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "kubernetes", Namespace: "default"},
		Spec: corev1.ServiceSpec{ClusterIP: ip, Ports: []corev1.ServicePort{{Name: "https", Port: 443, TargetPort: intstr.FromInt(targetPort)}}}}
}

func cm(ns, name string, data map[string]string) *corev1.ConfigMap {
	return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, Data: data}
}

func TestGatherKubeadmCluster(t *testing.T) {
	p := newPKI(t, "kubernetes", "kubernetes", "kubernetes.default", "kubernetes.default.svc")
	ci, _ := clientcmd.Write(clientcmdapi.Config{Clusters: map[string]*clientcmdapi.Cluster{"": {
		Server: "https://kubernetes.default:7443", CertificateAuthorityData: p.caPEM}}})
	c := fake.NewClientset(
		kubernetesSvc("10.100.0.1", 7443),
		cm("kube-system", "kubeadm-config", map[string]string{"ClusterConfiguration": `apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
kubernetesVersion: v1.37.1
networking:
  serviceSubnet: 10.100.0.0/16
  podSubnet: 10.244.0.0/16
  dnsDomain: corp.example
`}),
		&corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "kube-dns", Namespace: "kube-system"}, Spec: corev1.ServiceSpec{ClusterIP: "10.100.0.53"}},
		cm("kube-public", "cluster-info", map[string]string{"kubeconfig": string(ci), "jws-kubeconfig-abcdef": "sig"}),
		&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "kube-apiserver-m1", Namespace: "kube-system", Labels: map[string]string{"component": "kube-apiserver"}},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "kube-apiserver", Command: []string{"kube-apiserver", "--enable-bootstrap-token-auth=true"}}}}},
		&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "kube-controller-manager-m1", Namespace: "kube-system", Labels: map[string]string{"component": "kube-controller-manager"}},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "kube-controller-manager", Command: []string{"kube-controller-manager", "--controllers=*,bootstrapsigner,tokencleaner"}}}}},
	)
	f, err := Gather(context.Background(), p.inputs(c))
	if err != nil {
		t.Fatal(err)
	}
	check := func(name, got, want string) {
		t.Helper()
		if got != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
	check("ServiceCIDR", f.ServiceCIDR, "10.100.0.0/16")
	check("ServiceCIDRSource", f.ServiceCIDRSource, "kube-system/kubeadm-config")
	check("DNSDomain", f.DNSDomain, "corp.example")
	check("ClusterDNS", f.ClusterDNS, "10.100.0.53")
	check("PodCIDR", f.PodCIDR, "10.244.0.0/16")
	check("BootstrapTokenAuth", string(f.BootstrapTokenAuth), "yes")
	check("BootstrapSigner", string(f.BootstrapSigner), "yes")
	check("CASource", f.CASource, "the kubeconfig's certificate-authority-data")
	if f.SecurePort != 7443 || !f.Kubeadm {
		t.Errorf("SecurePort=%d Kubeadm=%t", f.SecurePort, f.Kubeadm)
	}
	if !strings.HasPrefix(f.CAHash, "sha256:") {
		t.Errorf("CAHash = %q", f.CAHash)
	}
	if f.ClusterInfo == nil || !f.ClusterInfo.Usable || len(f.ClusterInfo.SignedTokenIDs) != 1 {
		t.Errorf("ClusterInfo = %+v", f.ClusterInfo)
	}
	// --ca.cert was unreadable: that is a warning, not an error.
	if len(f.Warnings) != 1 || !strings.Contains(f.Warnings[0], "not readable") {
		t.Errorf("Warnings = %q", f.Warnings)
	}
}

func TestGatherBareClusterProbesServiceCIDR(t *testing.T) {
	p := newPKI(t, "kubernetes", "kubernetes.default")
	c := fake.NewClientset(kubernetesSvc("10.96.0.1", 6443))
	var probed bool
	c.PrependReactor("create", "services", func(a k8stesting.Action) (bool, runtime.Object, error) {
		ca := a.(k8stesting.CreateAction)
		if impl, ok := a.(k8stesting.CreateActionImpl); !ok || len(impl.CreateOptions.DryRun) == 0 {
			t.Errorf("the service CIDR probe was not a dry run")
		}
		probed = true
		svc := ca.GetObject().(*corev1.Service)
		return true, nil, apierrors.NewInvalid(schema.GroupKind{Kind: "Service"}, "x", field.ErrorList{
			field.Invalid(field.NewPath("spec", "clusterIPs"), []string{svc.Spec.ClusterIP},
				"failed to allocate IP "+svc.Spec.ClusterIP+": provided IP is not in the valid range. The range of valid IPs is 10.96.0.0/12")})
	})
	in := p.inputs(c)
	f, err := Gather(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	if !probed || f.ServiceCIDR != "10.96.0.0/12" {
		t.Errorf("ServiceCIDR = %q (probed %t)", f.ServiceCIDR, probed)
	}
	if f.ClusterDNS != "10.96.0.10" {
		t.Errorf("ClusterDNS = %q, want kubeadm's 10th address", f.ClusterDNS)
	}
	if f.DNSDomain != DefaultDNSDomain || !strings.Contains(strings.Join(f.Warnings, "\n"), "DNS domain") {
		t.Errorf("DNSDomain = %q, warnings %q", f.DNSDomain, f.Warnings)
	}
	if f.Kubeadm || f.ClusterInfo != nil {
		t.Errorf("Kubeadm=%t ClusterInfo=%+v", f.Kubeadm, f.ClusterInfo)
	}
	if f.BootstrapTokenAuth != Unknown || f.BootstrapSigner != Unknown {
		t.Errorf("bootstrap facts = %s/%s, want unknown without pods or tokens", f.BootstrapTokenAuth, f.BootstrapSigner)
	}
}

func TestGatherPrefersServiceCIDRObjectAndEndpointSlice(t *testing.T) {
	p := newPKI(t, "kubernetes", "kubernetes.default")
	c := fake.NewClientset(kubernetesSvc("10.96.0.1", 6443),
		&networkingv1.ServiceCIDR{ObjectMeta: metav1.ObjectMeta{Name: "kubernetes"}, Spec: networkingv1.ServiceCIDRSpec{CIDRs: []string{"10.96.0.0/16"}}},
		&discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Name: "kubernetes", Namespace: "default", Labels: map[string]string{discoveryv1.LabelServiceName: "kubernetes"}},
			Ports:     []discoveryv1.EndpointPort{{Name: ptr.To("https"), Port: ptr.To[int32](16443)}},
			Endpoints: []discoveryv1.Endpoint{{Addresses: []string{"198.18.0.2"}}}},
	)
	f, err := Gather(context.Background(), p.inputs(c))
	if err != nil {
		t.Fatal(err)
	}
	if f.ServiceCIDR != "10.96.0.0/16" || f.SecurePort != 16443 || len(f.Endpoints) != 1 || f.Endpoints[0] != "198.18.0.2:16443" {
		t.Errorf("ServiceCIDR=%q SecurePort=%d Endpoints=%v", f.ServiceCIDR, f.SecurePort, f.Endpoints)
	}
}

func TestGatherRejectsForeignCA(t *testing.T) {
	p := newPKI(t, "kubernetes", "kubernetes.default")
	other := newPKI(t, "other-ca")
	dir := t.TempDir()
	path := filepath.Join(dir, "ca.crt")
	if err := os.WriteFile(path, other.caPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	in := p.inputs(fake.NewClientset(kubernetesSvc("10.96.0.1", 6443)))
	in.CACertPath = path
	_, err := Gather(context.Background(), in)
	if err == nil || !strings.Contains(err.Error(), "did not sign the apiserver's certificate") || !strings.Contains(err.Error(), "--ca.cert") {
		t.Fatalf("err = %v", err)
	}
}

func TestGatherUnreachable(t *testing.T) {
	p := newPKI(t, "kubernetes")
	in := p.inputs(fake.NewClientset())
	in.ServingCert = func(context.Context) ([]*x509.Certificate, error) { return nil, errors.New("connection refused") }
	_, err := Gather(context.Background(), in)
	if !errors.Is(err, ErrUnreachable) {
		t.Fatalf("err = %v, want ErrUnreachable", err)
	}
}

func TestClusterInfoNamingAServerTheCertLacks(t *testing.T) {
	p := newPKI(t, "kubernetes", "kubernetes.default")
	ci, _ := clientcmd.Write(clientcmdapi.Config{Clusters: map[string]*clientcmdapi.Cluster{"": {
		Server: "https://10.0.0.99:6443", CertificateAuthorityData: p.caPEM}}})
	c := fake.NewClientset(kubernetesSvc("10.96.0.1", 6443), cm("kube-public", "cluster-info", map[string]string{"kubeconfig": string(ci)}))
	f, err := Gather(context.Background(), p.inputs(c))
	if err != nil {
		t.Fatal(err)
	}
	if f.ClusterInfo == nil || f.ClusterInfo.Usable || !strings.Contains(f.ClusterInfo.Problem, "10.0.0.99") {
		t.Fatalf("ClusterInfo = %+v", f.ClusterInfo)
	}
}

func TestFlagValue(t *testing.T) {
	args := []string{"kube-apiserver", "--a=1", "--b", "2", "--c", "--d=x,y"}
	for _, tc := range []struct {
		name, want string
		set        bool
	}{{"a", "1", true}, {"b", "2", true}, {"c", "", true}, {"d", "x,y", true}, {"e", "", false}} {
		if v, ok := flagValue(args, tc.name); v != tc.want || ok != tc.set {
			t.Errorf("flagValue(%s) = %q, %t", tc.name, v, ok)
		}
	}
}

func TestDNSDomainFromCorefile(t *testing.T) {
	p := newPKI(t, "kubernetes", "kubernetes.default")
	corefile := ".:53 {\n    errors\n    kubernetes edge.example in-addr.arpa ip6.arpa {\n       pods insecure\n    }\n    forward . /etc/resolv.conf\n}\n"
	c := fake.NewClientset(kubernetesSvc("10.96.0.1", 6443), cm("kube-system", "coredns", map[string]string{"Corefile": corefile}))
	f, err := Gather(context.Background(), p.inputs(c))
	if err != nil {
		t.Fatal(err)
	}
	if f.DNSDomain != "edge.example" || !strings.Contains(f.DNSDomainSource, "Corefile") {
		t.Fatalf("DNSDomain = %q (%s)", f.DNSDomain, f.DNSDomainSource)
	}
}
