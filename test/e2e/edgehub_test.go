package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	certutil "k8s.io/client-go/util/cert"
	"k8s.io/client-go/util/keyutil"
	"k8s.io/klog/v2"

	"github.com/edgeadm/edgeadm/pkg/edgehub"
	"github.com/edgeadm/edgeadm/pkg/edgehub/cache"
	"github.com/edgeadm/edgeadm/test/testenv"
)

// edgehub in this test process, in front of a real kube-apiserver reached
// through a TCP forwarder the test can cut: the link between an edge node
// and the cloud.

// tcpLink forwards 127.0.0.1:<port> to the apiserver; cut closes every
// open connection and resets new ones, restore lets them through again.
type tcpLink struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	up     bool
	conns  map[net.Conn]bool
}

func newTCPLink(t testing.TB, target string) *tcpLink {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	mustTB(t, err)
	l := &tcpLink{ln: ln, target: target, up: true, conns: map[net.Conn]bool{}}
	go l.serve()
	t.Cleanup(func() { ln.Close(); l.cut() })
	return l
}

func (l *tcpLink) serve() {
	for {
		c, err := l.ln.Accept()
		if err != nil {
			return
		}
		l.mu.Lock()
		up := l.up
		l.mu.Unlock()
		if !up {
			c.Close()
			continue
		}
		u, err := net.DialTimeout("tcp", l.target, 5*time.Second)
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

func (l *tcpLink) cut() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.up = false
	for c := range l.conns {
		c.Close()
	}
	l.conns = map[net.Conn]bool{}
}

func (l *tcpLink) restore() {
	l.mu.Lock()
	l.up = true
	l.mu.Unlock()
}

// nodeCert issues a kubelet client certificate for node from the cluster
// CA: CN system:node:<node>, O system:nodes.
func nodeCert(t testing.TB, c *testenv.Cluster, node string) (certPEM, keyPEM []byte) {
	t.Helper()
	cas, err := certutil.CertsFromFile(c.CACertPath)
	mustTB(t, err)
	caKey, err := keyutil.PrivateKeyFromFile(c.CAKeyPath)
	mustTB(t, err)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	mustTB(t, err)
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	mustTB(t, err)
	tmpl := &x509.Certificate{SerialNumber: serial, Subject: pkix.Name{CommonName: "system:node:" + node, Organization: []string{"system:nodes"}},
		NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, cas[0], &key.PublicKey, caKey)
	mustTB(t, err)
	kder, err := x509.MarshalECPrivateKey(key)
	mustTB(t, err)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
}

// runningHub is an in-process edgehub for node edge-1.
type runningHub struct {
	srv     *edgehub.Server
	store   *cache.DiskStore
	localCA []byte
}

func startEdgeHub(t testing.TB, c *testenv.Cluster, upstream string) *runningHub {
	t.Helper()
	dir := t.TempDir()
	certPEM, keyPEM := nodeCert(t, c, "edge-1")
	nodeFile := filepath.Join(dir, "kubelet-client-current.pem")
	mustTB(t, os.WriteFile(nodeFile, append(certPEM, keyPEM...), 0o600))
	cfg := &edgehub.Config{APIVersion: edgehub.APIVersion, Kind: edgehub.Kind, NodeName: "edge-1",
		ListenAddress: "127.0.0.1:0", HealthAddress: "127.0.0.1:0", Upstreams: []string{upstream},
		ClusterCAFile: c.CACertPath, NodeCertificateFile: nodeFile, DataDir: filepath.Join(dir, "edgehub")}
	mustTB(t, cfg.Validate())
	mustTB(t, os.MkdirAll(cfg.DataDir, 0o700))
	mustTB(t, edgehub.EnsurePKI(cfg.PKIDir(), time.Now()))
	store, err := cache.Open(cfg.CacheDir(), cache.Options{})
	mustTB(t, err)
	tuning := edgehub.DefaultTuning()
	// Learning the apiserver's own address would route around the
	// forwarder this test cuts.
	tuning.LearnInterval = 0
	srv, err := edgehub.NewServer(cfg, tuning, store, klog.Background())
	mustTB(t, err)
	mustTB(t, srv.Start(context.Background()))
	localCA, err := os.ReadFile(filepath.Join(cfg.PKIDir(), edgehub.CAFileName))
	mustTB(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Stop(ctx)
		_ = store.Close()
	})
	return &runningHub{srv: srv, store: store, localCA: localCA}
}

func (h *runningHub) client(t *testing.T, certPEM, keyPEM []byte) kubernetes.Interface {
	t.Helper()
	cs, err := kubernetes.NewForConfig(&rest.Config{Host: "https://" + h.srv.APIAddr(),
		TLSClientConfig: rest.TLSClientConfig{CAData: h.localCA, CertData: certPEM, KeyData: keyPEM}, Timeout: 30 * time.Second})
	must(t, err)
	return cs
}

func (h *runningHub) waitOnline(t *testing.T, want bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := testenv.Poll(ctx, 50*time.Millisecond, func(context.Context) (bool, error) {
		online, _ := h.srv.Balancer().Online()
		return online == want, nil
	})
	if err != nil {
		t.Fatalf("edgehub online=%v not reached in 30s: %v", want, err)
	}
}

func podKeys(l *corev1.PodList) string {
	var out []string
	for _, p := range l.Items {
		out = append(out, p.Namespace+"/"+p.Name+"@"+p.ResourceVersion)
	}
	sort.Strings(out)
	return strings.Join(out, " ")
}

// edgehubSelectorCases are the kubelet's own LIST (spec.nodeName) narrowed
// by namespace, labels and a second field. The Node authorizer lets a node
// list pods only with spec.nodeName=<itself>.
var edgehubSelectorCases = []metav1.ListOptions{
	{FieldSelector: "spec.nodeName=edge-1"},
	{FieldSelector: "spec.nodeName=edge-1", LabelSelector: "app=web"},
	{FieldSelector: "spec.nodeName=edge-1", LabelSelector: "app in (web,db),tier!=front"},
	{FieldSelector: "spec.nodeName=edge-1", LabelSelector: "!tier"},
	{FieldSelector: "spec.nodeName=edge-1,metadata.namespace=eh"},
	{FieldSelector: "spec.nodeName=edge-1,metadata.name=web-1"},
}

func TestEdgeHubRealAPIServerOffline(t *testing.T) {
	c := testenv.NewCluster(t, testenv.ControlPlaneOptions{Flavour: testenv.Bare})
	ctx := context.Background()
	admin := c.Client
	for _, n := range []string{"edge-1", "edge-2"} {
		_, err := admin.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: n}}, metav1.CreateOptions{})
		must(t, err)
	}
	_, err := admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "eh"}}, metav1.CreateOptions{})
	must(t, err)
	for _, ns := range []string{"default", "eh"} {
		// The service account admission wants the namespace's "default"
		// ServiceAccount, which the controller-manager makes a moment
		// after the namespace: make it now (or find it made).
		_, err := admin.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default"}}, metav1.CreateOptions{})
		if err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
	}
	mk := func(ns, name, node string, lbls map[string]string) {
		_, err := admin.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: lbls},
			Spec:       corev1.PodSpec{NodeName: node, Containers: []corev1.Container{{Name: "c", Image: "registry.k8s.io/pause:3.10"}}},
		}, metav1.CreateOptions{})
		must(t, err)
	}
	mk("default", "web-1", "edge-1", map[string]string{"app": "web", "tier": "front"})
	mk("default", "web-2", "edge-2", map[string]string{"app": "web", "tier": "front"})
	mk("default", "db-1", "edge-1", map[string]string{"app": "db"})
	mk("eh", "web-1", "edge-1", map[string]string{"app": "web"})
	mk("eh", "cache-1", "edge-1", map[string]string{"app": "cache", "tier": "back"})

	link := newTCPLink(t, c.PublicEndpoint())
	// 127.0.0.1 is in the apiserver certificate: the forwarder is dialled
	// by a name the certificate carries.
	hub := startEdgeHub(t, c, "https://"+link.ln.Addr().String())
	hub.waitOnline(t, true)
	nodeCertPEM, nodeKeyPEM := nodeCert(t, c, "edge-1")
	node := hub.client(t, nodeCertPEM, nodeKeyPEM)

	online := make([]string, len(edgehubSelectorCases))
	for i, o := range edgehubSelectorCases {
		got, err := node.CoreV1().Pods("").List(ctx, o)
		must(t, err)
		direct, err := admin.CoreV1().Pods("").List(ctx, o)
		must(t, err)
		online[i] = podKeys(got)
		if online[i] != podKeys(direct) {
			t.Fatalf("online through edgehub %+v = %s, direct %s", o, online[i], podKeys(direct))
		}
	}
	if online[0] == "" || !strings.Contains(online[0], "eh/web-1") || strings.Contains(online[0], "web-2") {
		t.Fatalf("the node's LIST looks wrong: %s", online[0])
	}
	// The kubelet's namespaced reads: a namespaced LIST too.
	nsOnline, err := node.CoreV1().Pods("eh").List(ctx, metav1.ListOptions{FieldSelector: "spec.nodeName=edge-1"})
	must(t, err)

	link.cut()
	hub.waitOnline(t, false)
	for i, o := range edgehubSelectorCases {
		got, err := node.CoreV1().Pods("").List(ctx, o)
		if err != nil {
			t.Errorf("offline %+v: %v", o, err)
			continue
		}
		if podKeys(got) != online[i] {
			t.Errorf("offline %+v = %s, online the apiserver said %s", o, podKeys(got), online[i])
		}
	}
	nsOffline, err := node.CoreV1().Pods("eh").List(ctx, metav1.ListOptions{FieldSelector: "spec.nodeName=edge-1"})
	must(t, err)
	if podKeys(nsOffline) != podKeys(nsOnline) {
		t.Errorf("offline namespaced LIST = %s, online %s", podKeys(nsOffline), podKeys(nsOnline))
	}

	// Nothing from the cache for another node or for no credentials.
	otherCert, otherKey := nodeCert(t, c, "edge-2")
	_, err = hub.client(t, otherCert, otherKey).CoreV1().Pods("").List(ctx, edgehubSelectorCases[0])
	if !apierrors.IsForbidden(err) {
		t.Errorf("another node's certificate offline: %v, want 403", err)
	}
	_, err = hub.client(t, nil, nil).CoreV1().Pods("").List(ctx, edgehubSelectorCases[0])
	if !apierrors.IsServiceUnavailable(err) {
		t.Errorf("no credentials offline: %v, want 503", err)
	}
	// A write offline is refused with a Status, not dropped.
	_, err = node.CoreV1().Pods("default").Patch(ctx, "web-1", "application/merge-patch+json", []byte(`{"metadata":{"labels":{"x":"y"}}}`), metav1.PatchOptions{})
	if !apierrors.IsServiceUnavailable(err) || !strings.Contains(err.Error(), "edgehub") {
		t.Errorf("write offline: %v, want a 503 naming edgehub", err)
	}

	// Back online: fresh answers again, including what changed meanwhile.
	mk("eh", "late", "edge-1", map[string]string{"app": "web"})
	link.restore()
	hub.waitOnline(t, true)
	got, err := node.CoreV1().Pods("").List(ctx, edgehubSelectorCases[1])
	must(t, err)
	if !strings.Contains(podKeys(got), "eh/late") {
		t.Fatalf("back online, the LIST misses the pod made during the outage: %s", podKeys(got))
	}
}

// BenchmarkEdgeHubRealAPIServer: p50/p99 latency of GET and LIST through
// edgehub (online) against the same requests straight to a real
// kube-apiserver, both as the node, both asking for JSON, alternating
// request by request; p50-overhead-% is edgehub's p50 over direct's.
//
//	EDGEADM_E2E=1 flock /tmp/e2e.lock go test -p 1 -run '^$' -bench EdgeHubRealAPIServer -benchtime 400x ./test/e2e
func BenchmarkEdgeHubRealAPIServer(b *testing.B) {
	c := testenv.NewCluster(b, testenv.ControlPlaneOptions{Flavour: testenv.Bare})
	ctx := context.Background()
	admin := c.Client
	_, err := admin.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "edge-1"}}, metav1.CreateOptions{})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := admin.CoreV1().ServiceAccounts("default").Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default"}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		b.Fatal(err)
	}
	for i := 0; i < 200; i++ {
		_, err := admin.CoreV1().Pods("default").Create(ctx, &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("b-%03d", i), Labels: map[string]string{"app": fmt.Sprint("a", i%10)}},
			Spec:       corev1.PodSpec{NodeName: "edge-1", Containers: []corev1.Container{{Name: "c", Image: "registry.k8s.io/pause:3.10"}}},
		}, metav1.CreateOptions{})
		if err != nil {
			b.Fatal(err)
		}
	}
	// Both sides through the same loopback forwarder: 127.0.0.1 is a name
	// the apiserver certificate carries, the public address is not.
	link := newTCPLink(b, c.PublicEndpoint())
	upstream := "https://" + link.ln.Addr().String()
	hub := startEdgeHub(b, c, upstream)
	certPEM, keyPEM := nodeCert(b, c, "edge-1")
	caPEM, err := os.ReadFile(c.CACertPath)
	if err != nil {
		b.Fatal(err)
	}
	direct, err := rest.TransportFor(&rest.Config{TLSClientConfig: rest.TLSClientConfig{CAData: caPEM, CertData: certPEM, KeyData: keyPEM}})
	if err != nil {
		b.Fatal(err)
	}
	via, err := rest.TransportFor(&rest.Config{TLSClientConfig: rest.TLSClientConfig{CAData: hub.localCA, CertData: certPEM, KeyData: keyPEM}})
	if err != nil {
		b.Fatal(err)
	}
	sides := []struct {
		cl   *http.Client
		base string
	}{{&http.Client{Transport: direct}, upstream}, {&http.Client{Transport: via}, "https://" + hub.srv.APIAddr()}}
	for _, r := range []struct{ name, path string }{
		{"GET", "/api/v1/namespaces/default/pods/b-001"},
		{"LIST-20", "/api/v1/pods?fieldSelector=spec.nodeName%3Dedge-1&labelSelector=app%3Da1"},
		{"LIST-200", "/api/v1/pods?fieldSelector=spec.nodeName%3Dedge-1"},
	} {
		// Direct and through edgehub alternate request by request, so both
		// see the same load on this shared machine: a figure taken from two
		// runs one after the other measured the machine's mood as much as
		// edgehub (the same build gave +15 % and -2 % at GET p50).
		b.Run(r.name, func(b *testing.B) {
			d := [2][]time.Duration{make([]time.Duration, 0, b.N), make([]time.Duration, 0, b.N)}
			for i := 0; i < b.N; i++ {
				for k := range sides {
					side := sides[(i+k)%2] // which goes first alternates too
					req, _ := http.NewRequest(http.MethodGet, side.base+r.path, nil)
					req.Header.Set("Accept", "application/json")
					start := time.Now()
					resp, err := side.cl.Do(req)
					if err != nil {
						b.Fatal(err)
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != http.StatusOK {
						b.Fatalf("%s: %s", r.path, resp.Status)
					}
					d[(i+k)%2] = append(d[(i+k)%2], time.Since(start))
				}
			}
			var p50 [2]float64
			for k, name := range []string{"direct", "edgehub"} {
				sort.Slice(d[k], func(i, j int) bool { return d[k][i] < d[k][j] })
				p50[k] = float64(d[k][len(d[k])/2].Microseconds())
				b.ReportMetric(p50[k], name+"-p50-µs")
				b.ReportMetric(float64(d[k][len(d[k])*99/100].Microseconds()), name+"-p99-µs")
			}
			b.ReportMetric(100*(p50[1]-p50[0])/p50[0], "p50-overhead-%")
		})
	}
}

func mustTB(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
