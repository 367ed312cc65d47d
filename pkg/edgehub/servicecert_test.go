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
	"fmt"
	"math/big"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	certificatesv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	capi "k8s.io/kubernetes/pkg/apis/certificates"
)

// signerCA is a cluster CA for the tests: it signs like the kubelet-serving
// signer does (what the CSR asks, for a year).
type signerCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

func newSignerCA(t *testing.T) *signerCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "kubernetes"}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &signerCA{cert: cert, key: key, pool: pool}
}

func (ca *signerCA) sign(t *testing.T, csrPEM []byte, notBefore time.Time, life time.Duration) []byte {
	t.Helper()
	out, err := ca.signCSR(csrPEM, notBefore, life)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// signCSR signs like the kubelet-serving signer: what the CSR asks.
func (ca *signerCA) signCSR(csrPEM []byte, notBefore time.Time, life time.Duration) ([]byte, error) {
	b, _ := pem.Decode(csrPEM)
	if b == nil {
		return nil, fmt.Errorf("CSR is not PEM")
	}
	req, err := x509.ParseCertificateRequest(b.Bytes)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: req.Subject, DNSNames: req.DNSNames, IPAddresses: req.IPAddresses,
		NotBefore: notBefore, NotAfter: notBefore.Add(life), KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, req.PublicKey, ca.key)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), nil
}

var testServiceIPs = []netip.Addr{netip.MustParseAddr("10.96.0.1")}

// TestServiceCSRIsKubeletServing: the request passes the checks of the
// kubelet-serving signer (kube-controller-manager signs nothing else).
func TestServiceCSRIsKubeletServing(t *testing.T) {
	csrPEM, _, err := newServiceCSR("edge-1", "cluster.local", testServiceIPs)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := pem.Decode(csrPEM)
	req, err := x509.ParseCertificateRequest(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	usages := sets.NewString()
	for _, u := range ServiceCertUsages {
		usages.Insert(string(u))
	}
	if err := capi.ValidateKubeletServingCSR(req, usages); err != nil {
		t.Fatalf("the kubelet-serving signer would refuse it: %v", err)
	}
	if req.Subject.CommonName != "system:node:edge-1" || len(req.IPAddresses) != 1 || !req.IPAddresses[0].Equal(testServiceIPs[0].AsSlice()) {
		t.Errorf("subject %v, IPs %v", req.Subject, req.IPAddresses)
	}
	if want := "kubernetes,kubernetes.default,kubernetes.default.svc,kubernetes.default.svc.cluster.local"; strings.Join(req.DNSNames, ",") != want {
		t.Errorf("DNS names %v, want %s", req.DNSNames, want)
	}
}

// fakeSigner makes a fake clientset whose CSRs are signed (or denied) on
// creation, as edge-controller and kube-controller-manager would.
func fakeSigner(t *testing.T, ca *signerCA, deny bool, sign func([]byte) []byte) *fake.Clientset {
	client := fake.NewClientset(&corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "kubernetes", Namespace: "default"},
		Spec:       corev1.ServiceSpec{ClusterIP: "10.96.0.1", ClusterIPs: []string{"10.96.0.1"}},
	})
	n := 0
	client.PrependReactor("create", "certificatesigningrequests", func(a k8stesting.Action) (bool, runtime.Object, error) {
		csr := a.(k8stesting.CreateAction).GetObject().(*certificatesv1.CertificateSigningRequest)
		n++
		csr.Name = csr.GenerateName + string(rune('a'+n))
		if deny {
			csr.Status.Conditions = []certificatesv1.CertificateSigningRequestCondition{{Type: certificatesv1.CertificateDenied, Status: corev1.ConditionTrue, Reason: "NotOurs"}}
			return false, nil, nil
		}
		csr.Status.Conditions = []certificatesv1.CertificateSigningRequestCondition{{Type: certificatesv1.CertificateApproved, Status: corev1.ConditionTrue}}
		csr.Status.Certificate = sign(csr.Spec.Request)
		return false, nil, nil
	})
	return client
}

func TestServiceCertObtainLoadRenew(t *testing.T) {
	ca := newSignerCA(t)
	dir := filepath.Join(t.TempDir(), "pki")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	sc := &serviceCert{dir: dir, nodeName: "edge-1", clusterDomain: "cluster.local", roots: ca.pool}
	if err := sc.load(); err != nil || sc.current() != nil {
		t.Fatalf("load of nothing: %v, %v", sc.current(), err)
	}
	if _, err := sc.getCertificate(nil); err == nil {
		t.Error("a handshake without a certificate must fail")
	}
	if why := sc.due(time.Now(), nil); why == "" {
		t.Error("no certificate: due must say so")
	}
	now := time.Now()
	client := fakeSigner(t, ca, false, func(req []byte) []byte { return ca.sign(t, req, now.Add(-time.Minute), 10*time.Hour) })
	ctx := context.Background()
	ips, err := kubernetesServiceIPs(ctx, client)
	if err != nil || !sameAddrs(ips, testServiceIPs) {
		t.Fatalf("Service IPs %v, %v", ips, err)
	}
	if err := sc.obtain(ctx, client, ips, time.Now); err != nil {
		t.Fatal(err)
	}
	csrs, _ := client.CertificatesV1().CertificateSigningRequests().List(ctx, metav1.ListOptions{})
	if len(csrs.Items) != 1 || csrs.Items[0].Spec.SignerName != certificatesv1.KubeletServingSignerName || !strings.HasPrefix(csrs.Items[0].Name, ServiceCSRPrefix+"edge-1-") {
		t.Fatalf("CSRs made: %+v", csrs.Items)
	}
	fi, err := os.Stat(filepath.Join(dir, ServiceKeyName))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v, %v (want 0600)", fi, err)
	}
	c, err := sc.getCertificate(nil)
	if err != nil || c.Leaf == nil {
		t.Fatalf("served certificate: %v", err)
	}
	if _, err := c.Leaf.Verify(x509.VerifyOptions{DNSName: "10.96.0.1", Roots: ca.pool}); err != nil {
		t.Errorf("a pod with the cluster CA would not accept it: %v", err)
	}
	if why := sc.due(now, testServiceIPs); why != "" {
		t.Errorf("fresh certificate due: %s", why)
	}
	if why := sc.due(now, []netip.Addr{netip.MustParseAddr("10.96.0.2")}); !strings.Contains(why, "IPs") {
		t.Errorf("Service IP changed: due says %q", why)
	}
	if why := sc.due(now.Add(7*time.Hour+time.Minute), nil); !strings.Contains(why, "renewal") {
		t.Errorf("past 70%% of its life: due says %q", why)
	}

	// A restart (offline) serves the same certificate from disk.
	again := &serviceCert{dir: dir, nodeName: "edge-1", clusterDomain: "cluster.local", roots: ca.pool}
	if err := again.load(); err != nil || again.current() == nil || !again.current().Equal(sc.current()) {
		t.Fatalf("reload: %v", err)
	}
	if _, err := tls.LoadX509KeyPair(filepath.Join(dir, ServiceCertName), filepath.Join(dir, ServiceKeyName)); err != nil {
		t.Fatal(err)
	}
}

func TestServiceCertRefusesBadAnswers(t *testing.T) {
	ca, other := newSignerCA(t), newSignerCA(t)
	ctx := context.Background()
	for name, tc := range map[string]struct {
		deny bool
		sign func(t *testing.T, req []byte) []byte
		want string
	}{
		"denied": {deny: true, want: "Denied"},
		"other CA": {sign: func(t *testing.T, req []byte) []byte {
			return other.sign(t, req, time.Now().Add(-time.Minute), time.Hour)
		}, want: "cluster CA"},
		"other key": {sign: func(t *testing.T, _ []byte) []byte {
			r, _, _ := newServiceCSR("edge-1", "x", testServiceIPs)
			return ca.sign(t, r, time.Now(), time.Hour)
		}, want: "not for the key"},
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			sc := &serviceCert{dir: dir, nodeName: "edge-1", clusterDomain: "cluster.local", roots: ca.pool}
			client := fakeSigner(t, ca, tc.deny, func(req []byte) []byte { return tc.sign(t, req) })
			err := sc.obtain(ctx, client, testServiceIPs, time.Now)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want one with %q", err, tc.want)
			}
			if sc.current() != nil || exists(filepath.Join(dir, ServiceCertName)) {
				t.Error("a refused answer was kept")
			}
		})
	}
}

func TestInClusterConfigValidation(t *testing.T) {
	base := "apiVersion: " + APIVersion + "\nkind: " + Kind + "\nnodeName: edge-1\nupstreams: [\"https://kubernetes.default:6443\"]\n"
	c, err := ParseConfig([]byte(base+"inClusterAddress: 192.0.2.10:10270\n"), "t")
	if err != nil || c.InClusterAddress != "192.0.2.10:10270" {
		t.Fatalf("valid in-cluster config: %+v, %v", c, err)
	}
	for _, bad := range []string{"0.0.0.0:10270", "127.0.0.1:10270", "node:10270", "192.0.2.10"} {
		if _, err := ParseConfig([]byte(base+"inClusterAddress: "+bad+"\n"), "t"); err == nil || !strings.Contains(err.Error(), "inClusterAddress") {
			t.Errorf("inClusterAddress %s: err %v, want one naming inClusterAddress", bad, err)
		}
	}
	if _, err := ParseConfig([]byte(base+"inClusterAddress: 192.0.2.10:10270\nclusterDomain: \"a b\"\n"), "t"); err == nil || !strings.Contains(err.Error(), "clusterDomain") {
		t.Errorf("bad clusterDomain: err %v", err)
	}
}
