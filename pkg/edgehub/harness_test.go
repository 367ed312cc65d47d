package edgehub

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/klog/v2"

	"github.com/edgeadm/edgeadm/pkg/edgehub/cache"
)

// testCA is the "cluster CA" of a test: it signs the fake apiserver's
// serving certificate and client certificates.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newTestCA(t testing.TB) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test-cluster-ca"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &testCA{cert: cert, key: key, pem: encodeCert(cert)}
}

// issue returns PEM certificate and key for a client (cn, orgs) or, with
// ips, a server.
func (ca *testCA) issue(t testing.TB, cn string, orgs []string, ips ...net.IP) ([]byte, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := randomSerial()
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: cn, Organization: orgs},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if len(ips) > 0 {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = ips
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, key.Public(), ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kd, _ := x509.MarshalECPrivateKey(key)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kd})
}

// fakeAPIServer is a small apiserver over pods: GET, LIST and WATCH with
// label and field selectors, writes answered 201, /readyz configurable.
// It records who called (client certificate CN, Authorization) and how.
type fakeAPIServer struct {
	srv *httptest.Server

	mu     sync.Mutex
	pods   map[string]*corev1.Pod // ns/name
	rv     int
	events chan string // raw watch event lines pushed by a test
	calls  []fakeCall

	readyzFail atomic.Bool
	probes     atomic.Int64
	// pattern, when set, decides each probe from its number, so a test's
	// sequence of answers does not depend on when a probe arrives.
	pattern atomic.Pointer[probePattern]
	// slices, when set, answers the default/kubernetes EndpointSlices.
	slices atomic.Pointer[string]
}

type fakeCall struct {
	Method, Path, Query, Accept, Authorization, CertCN string
}

func newFakeAPIServer(t testing.TB, ca *testCA) *fakeAPIServer {
	t.Helper()
	f := &fakeAPIServer{pods: map[string]*corev1.Pod{}, rv: 100, events: make(chan string, 100)}
	f.srv = httptest.NewUnstartedServer(http.HandlerFunc(f.serve))
	certPEM, keyPEM := ca.issue(t, "kube-apiserver", nil, net.ParseIP("127.0.0.1"))
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca.cert)
	f.srv.TLS = &tls.Config{Certificates: []tls.Certificate{pair}, ClientAuth: tls.VerifyClientCertIfGiven, ClientCAs: pool}
	f.srv.StartTLS()
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeAPIServer) addPod(p *corev1.Pod) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rv++
	p.ResourceVersion = fmt.Sprint(f.rv)
	f.pods[p.Namespace+"/"+p.Name] = p
}

func (f *fakeAPIServer) callLog() []fakeCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]fakeCall(nil), f.calls...)
}

// probePattern fails probe number start+i when fails[i%len(fails)].
type probePattern struct {
	fails []bool
	start int64
}

// setProbePattern makes the probes from the next one on follow fails, in a
// loop, until clearProbePattern.
func (f *fakeAPIServer) setProbePattern(fails []bool) {
	f.pattern.Store(&probePattern{fails: fails, start: f.probes.Load() + 1})
}

func (f *fakeAPIServer) clearProbePattern() { f.pattern.Store(nil) }

// probeFails decides probe number n: by the pattern once it applies, else
// by readyzFail (a probe counted just before the pattern was set).
func (f *fakeAPIServer) probeFails(n int64) bool {
	if p := f.pattern.Load(); p != nil && n >= p.start {
		return p.fails[(n-p.start)%int64(len(p.fails))]
	}
	return f.readyzFail.Load()
}

func (f *fakeAPIServer) serve(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/readyz" {
		if f.probeFails(f.probes.Add(1)) {
			http.Error(w, "not ready", http.StatusInternalServerError)
			return
		}
		fmt.Fprint(w, "ok")
		return
	}
	c := fakeCall{Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, Accept: r.Header.Get("Accept"), Authorization: r.Header.Get("Authorization")}
	if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
		c.CertCN = r.TLS.PeerCertificates[0].Subject.CommonName
	}
	f.mu.Lock()
	f.calls = append(f.calls, c)
	f.mu.Unlock()

	if r.URL.Path == "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices" {
		if sl := f.slices.Load(); sl != nil {
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprint(w, *sl)
			return
		}
		http.NotFound(w, r)
		return
	}
	if r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/token") {
		f.mu.Lock()
		f.rv++
		n := f.rv
		f.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		fmt.Fprintf(w, `{"kind":"TokenRequest","apiVersion":"authentication.k8s.io/v1","metadata":{},"spec":{"audiences":["a"]},"status":{"token":"tok-%d","expirationTimestamp":%q}}`,
			n, time.Now().Add(time.Hour).UTC().Format(time.RFC3339))
		return
	}
	if r.Method != http.MethodGet {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		_, _ = io.Copy(w, r.Body)
		return
	}
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	// api v1 [namespaces ns] pods [name]
	var ns, name string
	switch {
	case len(parts) == 3 && parts[2] == "pods":
	case len(parts) == 5 && parts[2] == "namespaces" && parts[4] == "pods":
		ns = parts[3]
	case len(parts) == 6 && parts[2] == "namespaces" && parts[4] == "pods":
		ns, name = parts[3], parts[5]
	default:
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	if name != "" {
		f.mu.Lock()
		p, ok := f.pods[ns+"/"+name]
		var body []byte
		if ok {
			cp := p.DeepCopy()
			cp.TypeMeta = metav1.TypeMeta{Kind: "Pod", APIVersion: "v1"}
			body, _ = json.Marshal(cp)
		}
		f.mu.Unlock()
		if !ok {
			w.WriteHeader(http.StatusNotFound)
			_ = json.NewEncoder(w).Encode(metav1.Status{TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"}, Status: "Failure", Reason: metav1.StatusReasonNotFound, Code: 404})
			return
		}
		_, _ = w.Write(body)
		return
	}
	if r.URL.Query().Get("watch") == "true" {
		w.WriteHeader(http.StatusOK)
		http.NewResponseController(w).Flush()
		for {
			select {
			case <-r.Context().Done():
				return
			case ev, ok := <-f.events:
				if !ok {
					return
				}
				fmt.Fprintln(w, ev)
				http.NewResponseController(w).Flush()
			}
		}
	}
	ls, err := labels.Parse(r.URL.Query().Get("labelSelector"))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	fsel, err := fields.ParseSelector(r.URL.Query().Get("fieldSelector"))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	f.mu.Lock()
	list := corev1.PodList{TypeMeta: metav1.TypeMeta{Kind: "PodList", APIVersion: "v1"}, ListMeta: metav1.ListMeta{ResourceVersion: fmt.Sprint(f.rv)}}
	for _, p := range f.pods {
		if ns != "" && p.Namespace != ns {
			continue
		}
		fset := fields.Set{"metadata.name": p.Name, "metadata.namespace": p.Namespace, "spec.nodeName": p.Spec.NodeName, "status.phase": string(p.Status.Phase)}
		if !ls.Matches(labels.Set(p.Labels)) || !fsel.Matches(fset) {
			continue
		}
		list.Items = append(list.Items, *p.DeepCopy())
	}
	f.mu.Unlock()
	sort.Slice(list.Items, func(i, j int) bool {
		a, b := list.Items[i], list.Items[j]
		return a.Namespace+"/"+a.Name < b.Namespace+"/"+b.Name
	})
	_ = json.NewEncoder(w).Encode(list)
}

// link is a TCP forwarder between edgehub and an upstream that a test can
// cut: cut closes open connections and refuses (resets) new ones.
type link struct {
	ln     net.Listener
	target string
	up     atomic.Bool
	mu     sync.Mutex
	conns  map[net.Conn]bool
}

func newLink(t testing.TB, target string) *link {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := &link{ln: ln, target: target, conns: map[net.Conn]bool{}}
	l.up.Store(true)
	go l.accept()
	t.Cleanup(func() { ln.Close(); l.cut() })
	return l
}

func (l *link) url() string { return "https://" + l.ln.Addr().String() }

func (l *link) accept() {
	for {
		c, err := l.ln.Accept()
		if err != nil {
			return
		}
		if !l.up.Load() {
			c.Close()
			continue
		}
		u, err := net.Dial("tcp", l.target)
		if err != nil {
			c.Close()
			continue
		}
		l.mu.Lock()
		l.conns[c], l.conns[u] = true, true
		l.mu.Unlock()
		go func() { _, _ = io.Copy(u, c); u.Close() }()
		go func() { _, _ = io.Copy(c, u); c.Close() }()
	}
}

func (l *link) cut() {
	l.up.Store(false)
	l.mu.Lock()
	defer l.mu.Unlock()
	for c := range l.conns {
		c.Close()
	}
	l.conns = map[net.Conn]bool{}
}

func (l *link) restore() { l.up.Store(true) }

// hub is an edgehub under test with its files.
type hub struct {
	srv     *Server
	store   *cache.DiskStore
	cfg     *Config
	ca      *testCA
	nodePEM []byte // node certificate + key
}

func testTuning() Tuning {
	return Tuning{ProbeInterval: 50 * time.Millisecond, ProbeTimeout: 500 * time.Millisecond, DialTimeout: 500 * time.Millisecond,
		FailuresToDown: 3, SuccessesToUp: 2}
}

// startHub runs edgehub for node edge-1 against upstreams, with dataDir
// (a fresh one when empty).
func startHub(t testing.TB, ca *testCA, dataDir string, upstreams ...string) *hub {
	t.Helper()
	return startHubTuned(t, ca, dataDir, testTuning(), upstreams...)
}

func startHubTuned(t testing.TB, ca *testCA, dataDir string, tuning Tuning, upstreams ...string) *hub {
	t.Helper()
	return startHubWith(t, ca, dataDir, tuning, nil, upstreams...)
}

// startHubWith is startHubTuned calling beforeStart, when set, between
// NewServer and Start.
func startHubWith(t testing.TB, ca *testCA, dataDir string, tuning Tuning, beforeStart func(*Config, *Server), upstreams ...string) *hub {
	t.Helper()
	dir := t.TempDir()
	if dataDir == "" {
		dataDir = filepath.Join(dir, "data")
	}
	caFile := filepath.Join(dir, "ca.crt")
	must(t, os.WriteFile(caFile, ca.pem, 0o644))
	certPEM, keyPEM := ca.issue(t, "system:node:edge-1", []string{"system:nodes"})
	nodeFile := filepath.Join(dir, "kubelet-client-current.pem")
	nodePEM := append(append([]byte{}, certPEM...), keyPEM...)
	must(t, os.WriteFile(nodeFile, nodePEM, 0o600))
	cfg := &Config{APIVersion: APIVersion, Kind: Kind, NodeName: "edge-1", ListenAddress: "127.0.0.1:0", HealthAddress: "127.0.0.1:0",
		Upstreams: upstreams, ClusterCAFile: caFile, NodeCertificateFile: nodeFile, DataDir: dataDir}
	must(t, cfg.Validate())
	must(t, EnsurePKI(cfg.PKIDir(), time.Now()))
	store, err := cache.Open(cfg.CacheDir(), cache.Options{FlushInterval: 10 * time.Millisecond})
	must(t, err)
	srv, err := NewServer(cfg, tuning, store, klog.Background())
	must(t, err)
	if beforeStart != nil {
		beforeStart(cfg, srv)
	}
	must(t, srv.Start(context.Background()))
	h := &hub{srv: srv, store: store, cfg: cfg, ca: ca, nodePEM: nodePEM}
	t.Cleanup(func() { h.stop(t) })
	return h
}

func (h *hub) stop(t testing.TB) {
	if h.srv == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = h.srv.Stop(ctx)
	must(t, h.store.Close())
	h.srv = nil
}

func (h *hub) localCA(t testing.TB) []byte {
	b, err := os.ReadFile(filepath.Join(h.cfg.PKIDir(), CAFileName))
	must(t, err)
	return b
}

// restConfig is a client of edgehub: as the node (certPEM/keyPEM from
// h.nodePEM), with another certificate, a token, or nothing.
func (h *hub) restConfig(t testing.TB, certPEM, keyPEM []byte, token string) *rest.Config {
	return &rest.Config{
		Host:            "https://" + h.srv.APIAddr(),
		TLSClientConfig: rest.TLSClientConfig{CAData: h.localCA(t), CertData: certPEM, KeyData: keyPEM},
		BearerToken:     token,
		Timeout:         10 * time.Second,
	}
}

func (h *hub) nodeClient(t testing.TB) kubernetes.Interface {
	cert, key := splitPEM(h.nodePEM)
	c, err := kubernetes.NewForConfig(h.restConfig(t, cert, key, ""))
	must(t, err)
	return c
}

func (h *hub) clientFor(t testing.TB, cfg *rest.Config) kubernetes.Interface {
	c, err := kubernetes.NewForConfig(cfg)
	must(t, err)
	return c
}

func splitPEM(b []byte) (cert, key []byte) {
	i := strings.Index(string(b), "-----BEGIN EC PRIVATE KEY")
	return b[:i], b[i:]
}

// waitOnline polls (bounded) until edgehub's upstream state is want.
func (h *hub) waitOnline(t testing.TB, want bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if online, _ := h.srv.Balancer().Online(); online == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("edgehub online=%v not reached within 10s", want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func pod(ns, name, node string, lbls map[string]string, phase corev1.PodPhase) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: lbls, UID: types.UID("uid-" + ns + "-" + name)},
		Spec:       corev1.PodSpec{NodeName: node, Containers: []corev1.Container{{Name: "c", Image: "pause"}}},
		Status:     corev1.PodStatus{Phase: phase},
	}
}

func restTransport(cfg *rest.Config) (http.RoundTripper, error) {
	return rest.TransportFor(cfg)
}
