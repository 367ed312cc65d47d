package edgehub

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	certificatesv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/klog/v2"

	"github.com/edgeadm/edgeadm/pkg/edgehub/cache"
)

// csrAPIServer is a fake apiserver with what the in-cluster face needs: the
// kubernetes Service, CSRs signed at once by the cluster CA (as if approved),
// one ConfigMap for a pod's token, /readyz.
type csrAPIServer struct {
	srv *httptest.Server
	ca  *testCA

	mu      sync.Mutex
	csrs    map[string]*certificatesv1.CertificateSigningRequest
	tokens  []string // Authorization headers of ConfigMap reads
	csrFrom []string // client certificate CN of CSR creators
}

func newCSRAPIServer(t *testing.T, ca *testCA) *csrAPIServer {
	f := &csrAPIServer{ca: ca, csrs: map[string]*certificatesv1.CertificateSigningRequest{}}
	f.srv = httptest.NewUnstartedServer(http.HandlerFunc(f.serve))
	certPEM, keyPEM := ca.issue(t, "kube-apiserver", nil, net.ParseIP("127.0.0.1"))
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	must(t, err)
	pool := x509.NewCertPool()
	pool.AddCert(ca.cert)
	f.srv.TLS = &tls.Config{Certificates: []tls.Certificate{pair}, ClientAuth: tls.VerifyClientCertIfGiven, ClientCAs: pool}
	f.srv.StartTLS()
	t.Cleanup(f.srv.Close)
	return f
}

func (f *csrAPIServer) serve(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	f.mu.Lock()
	defer f.mu.Unlock()
	const csrPath = "/apis/certificates.k8s.io/v1/certificatesigningrequests"
	switch {
	case r.URL.Path == "/readyz":
		_, _ = io.WriteString(w, "ok")
	case r.URL.Path == "/api/v1/namespaces/default/services/kubernetes":
		_ = json.NewEncoder(w).Encode(&corev1.Service{TypeMeta: metav1.TypeMeta{Kind: "Service", APIVersion: "v1"},
			ObjectMeta: metav1.ObjectMeta{Name: "kubernetes", Namespace: "default"},
			Spec:       corev1.ServiceSpec{ClusterIP: "10.96.0.1", ClusterIPs: []string{"10.96.0.1"}}})
	case r.URL.Path == csrPath && r.Method == http.MethodPost:
		var csr certificatesv1.CertificateSigningRequest
		if err := json.NewDecoder(r.Body).Decode(&csr); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
			f.csrFrom = append(f.csrFrom, r.TLS.PeerCertificates[0].Subject.CommonName)
		}
		csr.Name = csr.GenerateName + "x"
		csr.TypeMeta = metav1.TypeMeta{Kind: "CertificateSigningRequest", APIVersion: "certificates.k8s.io/v1"}
		cert, err := (&signerCA{cert: f.ca.cert, key: f.ca.key}).signCSR(csr.Spec.Request, time.Now().Add(-time.Hour), 365*24*time.Hour)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		csr.Status.Certificate = cert
		f.csrs[csr.Name] = &csr
		w.WriteHeader(http.StatusCreated)
		_ = json.NewEncoder(w).Encode(&csr)
	case strings.HasPrefix(r.URL.Path, csrPath+"/"):
		csr, ok := f.csrs[strings.TrimPrefix(r.URL.Path, csrPath+"/")]
		if !ok {
			http.NotFound(w, r)
			return
		}
		_ = json.NewEncoder(w).Encode(csr)
	case r.URL.Path == "/api/v1/namespaces/app/configmaps/cfg":
		f.tokens = append(f.tokens, r.Header.Get("Authorization"))
		_ = json.NewEncoder(w).Encode(&corev1.ConfigMap{TypeMeta: metav1.TypeMeta{Kind: "ConfigMap", APIVersion: "v1"},
			ObjectMeta: metav1.ObjectMeta{Name: "cfg", Namespace: "app", ResourceVersion: "7"}, Data: map[string]string{"value": "v1"}})
	default:
		http.NotFound(w, r)
	}
}

// recordingIptables stands in for iptables: it remembers what was run and
// which tables have edgehub's chain; built-in chains list empty.
type recordingIptables struct {
	mu     sync.Mutex
	calls  []string
	chains map[string]bool // table -> EDGEHUB-KUBERNETES exists
}

func (r *recordingIptables) run(_ context.Context, bin string, args ...string) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, bin+" "+strings.Join(args, " "))
	if r.chains == nil {
		r.chains = map[string]bool{}
	}
	if len(args) >= 5 && args[4] == "EDGEHUB-KUBERNETES" {
		switch table := args[2]; args[3] {
		case "-N":
			r.chains[table] = true
		case "-X":
			delete(r.chains, table)
		case "-S":
			if r.chains[table] {
				return "-N EDGEHUB-KUBERNETES\n", nil
			}
		}
	}
	return "", nil
}

func (r *recordingIptables) ran(sub string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range r.calls {
		if strings.Contains(c, sub) {
			return true
		}
	}
	return false
}

// TestInClusterFace: edgehub asks for the kubernetes Service certificate as
// the node, serves the in-cluster face with it (a client trusting only the
// cluster CA and dialling the Service IP by name accepts it), passes a pod's
// token through, installs the redirect, and removes it on Stop.
func TestInClusterFace(t *testing.T) {
	ca := newTestCA(t)
	api := newCSRAPIServer(t, ca)
	dir := t.TempDir()
	caFile := filepath.Join(dir, "ca.crt")
	must(t, os.WriteFile(caFile, ca.pem, 0o644))
	certPEM, keyPEM := ca.issue(t, "system:node:edge-1", []string{"system:nodes"})
	nodeFile := filepath.Join(dir, "kubelet-client-current.pem")
	must(t, os.WriteFile(nodeFile, append(certPEM, keyPEM...), 0o600))
	cfg := &Config{APIVersion: APIVersion, Kind: Kind, NodeName: "edge-1", ListenAddress: "127.0.0.1:0", HealthAddress: "127.0.0.1:0",
		Upstreams: []string{api.srv.URL}, ClusterCAFile: caFile, NodeCertificateFile: nodeFile, DataDir: filepath.Join(dir, "data"),
		// Loopback only here: the real one is the node's IP (Validate).
		InClusterAddress: "127.0.0.1:0"}
	must(t, EnsurePKI(cfg.PKIDir(), time.Now()))
	store, err := cache.Open(cfg.CacheDir(), cache.Options{FlushInterval: 10 * time.Millisecond})
	must(t, err)
	defer store.Close()
	ipt := &recordingIptables{}
	tuning := testTuning()
	tuning.ServiceCertInterval, tuning.Redirect = 100*time.Millisecond, ipt.run
	srv, err := NewServer(cfg, tuning, store, klog.Background())
	must(t, err)
	must(t, srv.Start(context.Background()))
	stopped := false
	defer func() {
		if !stopped {
			_ = srv.Stop(context.Background())
		}
	}()

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := wait.PollUntilContextCancel(ctx, 50*time.Millisecond, true, func(context.Context) (bool, error) {
		return ipt.ran("-j DNAT --to-destination " + srv.InClusterAddr()), nil
	}); err != nil {
		t.Fatalf("no redirect to %s installed; iptables calls: %v", srv.InClusterAddr(), ipt.calls)
	}
	for _, want := range []string{"-d 10.96.0.1/32 -p tcp --dport 443", "-t nat -I PREROUTING 1", "-t nat -I OUTPUT 1", "-t filter -I INPUT 1"} {
		if !ipt.ran(want) {
			t.Errorf("iptables never ran %q: %v", want, ipt.calls)
		}
	}
	api.mu.Lock()
	from := append([]string{}, api.csrFrom...)
	api.mu.Unlock()
	if len(from) != 1 || from[0] != "system:node:edge-1" {
		t.Errorf("CSRs created by %v, want one by the node", from)
	}

	// A pod: the cluster CA only, the Service IP as the name, a token.
	pool := x509.NewCertPool()
	pool.AddCert(ca.cert)
	// ForceAttemptHTTP2: a client that offers HTTP/2 still gets HTTP/1.1.
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{ForceAttemptHTTP2: true, TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "10.96.0.1"}}}
	req, _ := http.NewRequest(http.MethodGet, "https://"+srv.InClusterAddr()+"/api/v1/namespaces/app/configmaps/cfg", nil)
	req.Header.Set("Authorization", "Bearer pod-token")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("a pod trusting the cluster CA: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"value":"v1"`) {
		t.Fatalf("answer %d %s", resp.StatusCode, body)
	}
	if resp.ProtoMajor != 1 {
		t.Errorf("in-cluster face answered over %s, want HTTP/1.1 (see http1Only)", resp.Proto)
	}
	if leaf := resp.TLS.PeerCertificates[0]; leaf.Subject.CommonName != "system:node:edge-1" {
		t.Errorf("served by %q", leaf.Subject.CommonName)
	}
	api.mu.Lock()
	tokens := append([]string{}, api.tokens...)
	api.mu.Unlock()
	if len(tokens) != 1 || tokens[0] != "Bearer pod-token" {
		t.Errorf("the apiserver saw Authorization %v, want the pod's token passed through", tokens)
	}
	// Another name than the Service's is not in the certificate.
	client = &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "edge-1.example"}}}
	if _, err := client.Get("https://" + srv.InClusterAddr() + "/version"); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("a name outside the certificate: err %v", err)
	}
	if ipt.ran("-X EDGEHUB-KUBERNETES") {
		t.Error("the redirect was removed while serving")
	}
	keyInfo, err := os.Stat(filepath.Join(cfg.PKIDir(), ServiceKeyName))
	if err != nil || keyInfo.Mode().Perm() != 0o600 {
		t.Errorf("key file %v %v", keyInfo, err)
	}
	b, _ := os.ReadFile(filepath.Join(cfg.PKIDir(), ServiceCertName))
	if blk, _ := pem.Decode(b); blk == nil {
		t.Error("no certificate file")
	}

	sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer scancel()
	must(t, srv.Stop(sctx))
	stopped = true
	for _, table := range []string{"nat", "filter"} {
		if !ipt.ran("-t " + table + " -X EDGEHUB-KUBERNETES") {
			t.Errorf("Stop did not remove the %s chain: %v", table, ipt.calls)
		}
	}
}
