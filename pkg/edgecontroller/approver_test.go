package edgecontroller

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"

	certificatesv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/klog/v2"
	clocktesting "k8s.io/utils/clock/testing"
)

// csrFor is what edgehub on node asks for, changed by edit.
func csrFor(t *testing.T, node string, edit func(*x509.CertificateRequest, *certificatesv1.CertificateSigningRequestSpec)) *certificatesv1.CertificateSigningRequest {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.CertificateRequest{
		Subject:     pkix.Name{CommonName: "system:node:" + node, Organization: []string{"system:nodes"}},
		DNSNames:    []string{"kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"},
		IPAddresses: []net.IP{net.ParseIP("10.96.0.1")},
	}
	spec := certificatesv1.CertificateSigningRequestSpec{
		SignerName: certificatesv1.KubeletServingSignerName, Username: "system:node:" + node,
		Groups: []string{"system:nodes", "system:authenticated"},
		Usages: []certificatesv1.KeyUsage{certificatesv1.UsageDigitalSignature, certificatesv1.UsageKeyEncipherment, certificatesv1.UsageServerAuth},
	}
	if edit != nil {
		edit(tmpl, &spec)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		t.Fatal(err)
	}
	spec.Request = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
	return &certificatesv1.CertificateSigningRequest{ObjectMeta: metav1.ObjectMeta{Name: "edgehub-kubernetes-service-" + node + "-x"}, Spec: spec}
}

func kubernetesService() *corev1.Service {
	return &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "kubernetes", Namespace: "default"},
		Spec: corev1.ServiceSpec{ClusterIP: "10.96.0.1", ClusterIPs: []string{"10.96.0.1"}}}
}

func TestCheckServiceCertCSR(t *testing.T) {
	isEdge := func(n string) bool { return n == "e1" }
	ips := serviceIPs(kubernetesService())
	type edit = func(*x509.CertificateRequest, *certificatesv1.CertificateSigningRequestSpec)
	for name, tc := range map[string]struct {
		node string
		edit edit
		want string // "" approved
	}{
		"edgehub's": {node: "e1"},
		"no RSA usage set": {node: "e1", edit: func(_ *x509.CertificateRequest, s *certificatesv1.CertificateSigningRequestSpec) {
			s.Usages = s.Usages[:1]
			s.Usages = append(s.Usages, certificatesv1.UsageServerAuth)
		}},
		"IP only":      {node: "e1", edit: func(r *x509.CertificateRequest, _ *certificatesv1.CertificateSigningRequestSpec) { r.DNSNames = nil }},
		"a cloud node": {node: "cloud", want: "not an edge node"},
		"the kubelet's own": {node: "e1", edit: func(r *x509.CertificateRequest, _ *certificatesv1.CertificateSigningRequestSpec) {
			r.IPAddresses = []net.IP{net.ParseIP("198.18.1.10")}
		}, want: "not a ClusterIP"},
		"an extra IP": {node: "e1", edit: func(r *x509.CertificateRequest, _ *certificatesv1.CertificateSigningRequestSpec) {
			r.IPAddresses = append(r.IPAddresses, net.ParseIP("10.0.0.9"))
		}, want: "not a ClusterIP"},
		"an extra name": {node: "e1", edit: func(r *x509.CertificateRequest, _ *certificatesv1.CertificateSigningRequestSpec) {
			r.DNSNames = append(r.DNSNames, "evil.example")
		}, want: "DNS SAN"},
		"another domain": {node: "e1", edit: func(r *x509.CertificateRequest, _ *certificatesv1.CertificateSigningRequestSpec) {
			r.DNSNames = []string{"kubernetes.default.svc.example.com"}
		}, want: "DNS SAN"},
		"no IP": {node: "e1", edit: func(r *x509.CertificateRequest, _ *certificatesv1.CertificateSigningRequestSpec) { r.IPAddresses = nil }, want: "no IP SAN"},
		"CN of another node": {node: "e1", edit: func(r *x509.CertificateRequest, _ *certificatesv1.CertificateSigningRequestSpec) {
			r.Subject.CommonName = "system:node:e2"
		}, want: "not the requester"},
		"extra subject": {node: "e1", edit: func(r *x509.CertificateRequest, _ *certificatesv1.CertificateSigningRequestSpec) {
			r.Subject.OrganizationalUnit = []string{"x"}
		}, want: "more than CN and O"},
		"a URI": {node: "e1", edit: func(r *x509.CertificateRequest, _ *certificatesv1.CertificateSigningRequestSpec) {
			r.URIs = []*url.URL{{Scheme: "spiffe", Host: "x"}}
		}, want: "URI"},
		"client auth": {node: "e1", edit: func(_ *x509.CertificateRequest, s *certificatesv1.CertificateSigningRequestSpec) {
			s.Usages = append(s.Usages, certificatesv1.UsageClientAuth)
		}, want: "usages"},
		"asked by a user": {node: "e1", edit: func(_ *x509.CertificateRequest, s *certificatesv1.CertificateSigningRequestSpec) {
			s.Username = "alice"
			s.Groups = nil
		}, want: "not a node"},
		"another signer": {node: "e1", edit: func(_ *x509.CertificateRequest, s *certificatesv1.CertificateSigningRequestSpec) {
			s.SignerName = certificatesv1.KubeAPIServerClientSignerName
		}, want: "signer"},
		"node name in group only": {node: "e1", edit: func(_ *x509.CertificateRequest, s *certificatesv1.CertificateSigningRequestSpec) {
			s.Groups = []string{"system:authenticated"}
		}, want: "not a node"},
	} {
		t.Run(name, func(t *testing.T) {
			err := CheckServiceCertCSR(csrFor(t, tc.node, tc.edit), isEdge, ips, "cluster.local")
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("err %v, want one with %q", err, tc.want)
			}
		})
	}
}

// TestComponentApprovesEdgeHubCSRsOnly: running, edge-controller approves
// edgehub's CSR of an edge node and leaves the kubelet's own serving CSR
// and a cloud node's alone (neither approved nor denied).
func TestComponentApprovesEdgeHubCSRsOnly(t *testing.T) {
	ours := csrFor(t, "e1", nil)
	kubelets := csrFor(t, "e1", func(r *x509.CertificateRequest, _ *certificatesv1.CertificateSigningRequestSpec) {
		r.IPAddresses, r.DNSNames = []net.IP{net.ParseIP("198.18.1.10")}, []string{"e1"}
	})
	kubelets.Name = "csr-kubelet-e1"
	cloud := csrFor(t, "cloud", nil)
	w := newWorld(t, edgeNode("e1", true), kubeletLease("e1", t0), edgeNode("cloud", false), kubernetesService(), kubelets, cloud)
	c, err := NewComponent(w.kube, w.dyn, clocktesting.NewFakeClock(t0), testOpts, 2, klog.Background())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.Start(ctx, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Stop(context.Background()) }()
	// Made after the start: the informer's event brings it.
	if _, err := w.kube.CertificatesV1().CertificateSigningRequests().Create(ctx, ours, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var got *certificatesv1.CertificateSigningRequest
	if err := wait.PollUntilContextTimeout(ctx, 10*time.Millisecond, 10*time.Second, true, func(ctx context.Context) (bool, error) {
		got, err = w.kube.CertificatesV1().CertificateSigningRequests().Get(ctx, ours.Name, metav1.GetOptions{})
		return err == nil && decided(got), nil
	}); err != nil {
		t.Fatalf("edgehub's CSR not approved: %+v", got)
	}
	if cond := got.Status.Conditions[0]; cond.Type != certificatesv1.CertificateApproved || cond.Reason != ApprovalReason || cond.Status != corev1.ConditionTrue {
		t.Errorf("condition %+v", cond)
	}
	for _, name := range []string{kubelets.Name, cloud.Name} {
		other, err := w.kube.CertificatesV1().CertificateSigningRequests().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if len(other.Status.Conditions) != 0 {
			t.Errorf("CSR %s was decided: %+v", name, other.Status.Conditions)
		}
	}
}
