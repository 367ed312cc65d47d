package edgehub

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/klog/v2"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// waitProbes waits (bounded) until f has answered n more probes.
func waitProbes(t *testing.T, f *fakeAPIServer, n int64) {
	t.Helper()
	target := f.probes.Load() + n
	deadline := time.Now().Add(10 * time.Second)
	for f.probes.Load() < target {
		if time.Now().After(deadline) {
			t.Fatalf("fewer than %d probes within 10s", n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// An upstream that fails now and then (never three times in a row) keeps
// edgehub online; one that answers now and then (never twice in a row)
// keeps it offline. Each direction changes once.
func TestHysteresis(t *testing.T) {
	ca := newTestCA(t)
	f := newFakeAPIServer(t, ca)
	h := startHub(t, ca, "", f.srv.URL)
	h.waitOnline(t, true)
	tr := h.srv.Metrics().Transitions

	// Each probe's answer comes from its number, not from when it arrives:
	// a probe in flight while the test switches would otherwise make two
	// equal answers in a row on a loaded machine.
	flip := func(pattern []bool, rounds int64) {
		f.setProbePattern(pattern)
		waitProbes(t, f, rounds)
	}
	flip([]bool{true, true, false}, 30)
	if got := testutil.ToFloat64(tr.WithLabelValues("offline")); got != 0 {
		t.Fatalf("went offline %v times on a link failing 2 of 3 probes", got)
	}
	f.readyzFail.Store(true)
	f.clearProbePattern()
	h.waitOnline(t, false)
	flip([]bool{false, true}, 30)
	if online, _ := h.srv.Balancer().Online(); online {
		t.Fatal("came online on a link answering every other probe")
	}
	f.readyzFail.Store(false)
	f.clearProbePattern()
	h.waitOnline(t, true)
	if off, on := testutil.ToFloat64(tr.WithLabelValues("offline")), testutil.ToFloat64(tr.WithLabelValues("online")); off != 1 || on != 1 {
		t.Fatalf("transitions offline=%v online=%v, want 1 and 1", off, on)
	}
}

// Two upstreams: when the active one dies, requests go to the other at
// once (the failed request is retried there) and edgehub stays online.
func TestFailover(t *testing.T) {
	ca := newTestCA(t)
	a, b := newFakeAPIServer(t, ca), newFakeAPIServer(t, ca)
	a.addPod(pod("default", "p", "edge-1", nil, corev1.PodRunning))
	b.addPod(pod("default", "p", "edge-1", nil, corev1.PodRunning))
	la, lb := newLink(t, a.srv.Listener.Addr().String()), newLink(t, b.srv.Listener.Addr().String())
	h := startHub(t, ca, "", la.url(), lb.url())
	h.waitOnline(t, true)
	if got := h.srv.Balancer().Active().String(); got != la.url() {
		t.Fatalf("active upstream %s, want the first, %s", got, la.url())
	}
	c := h.nodeClient(t)
	ctx := context.Background()
	la.cut()
	// The first request after the cut may meet the dead link: it is
	// retried on the other upstream, not failed.
	for i := 0; i < 5; i++ {
		_, err := c.CoreV1().Pods("default").Get(ctx, "p", metav1.GetOptions{})
		must(t, err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for h.srv.Balancer().Active().String() != lb.url() {
		if time.Now().After(deadline) {
			t.Fatal("no failover to the second upstream within 10s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if online, _ := h.srv.Balancer().Online(); !online {
		t.Fatal("offline with one upstream still up")
	}
	if n := len(b.callLog()); n == 0 {
		t.Fatal("the second upstream got no request")
	}
	if got := testutil.ToFloat64(h.srv.Metrics().Failovers); got != 1 {
		t.Fatalf("failovers = %v, want 1", got)
	}
	if got := testutil.ToFloat64(h.srv.Metrics().Transitions.WithLabelValues("offline")); got != 0 {
		t.Fatalf("went offline %v times during a failover", got)
	}
}

// /healthz, /readyz and /metrics on the plain health address.
func TestHealthAndMetrics(t *testing.T) {
	ca := newTestCA(t)
	f := newFakeAPIServer(t, ca)
	seed(f)
	l := newLink(t, f.srv.Listener.Addr().String())
	h := startHub(t, ca, "", l.url())
	h.waitOnline(t, true)
	c := h.nodeClient(t)
	ctx := context.Background()
	_, err := c.CoreV1().Pods("").List(ctx, metav1.ListOptions{})
	must(t, err)
	l.cut()
	h.waitOnline(t, false)
	_, err = c.CoreV1().Pods("").List(ctx, metav1.ListOptions{})
	must(t, err)
	_, err = c.CoreV1().Pods("default").Get(ctx, "nope", metav1.GetOptions{})
	if err == nil {
		t.Fatal("offline GET of an object never read succeeded")
	}

	get := func(path string) (int, string) {
		resp, err := http.Get("http://" + h.srv.HealthAddr() + path)
		must(t, err)
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get("/healthz"); code != 200 || strings.TrimSpace(body) != "ok" {
		t.Errorf("/healthz = %d %q", code, body)
	}
	if code, body := get("/readyz"); code != 200 || !strings.Contains(body, "offline") || !strings.Contains(body, "cache") {
		t.Errorf("/readyz offline = %d %q, want 200 naming the cache", code, body)
	}
	code, body := get("/metrics")
	if code != 200 {
		t.Fatalf("/metrics = %d", code)
	}
	for _, want := range []string{
		`edgehub_requests_total{result="proxied",verb="list"} 1`,
		`edgehub_requests_total{result="cache_hit",verb="list"} 1`,
		`edgehub_requests_total{result="cache_miss",verb="get"} 1`,
		`edgehub_cache_lookups_total{result="hit",verb="list"} 1`,
		`edgehub_cache_lookups_total{result="miss",verb="get"} 1`,
		`edgehub_upstream_online 0`,
		`edgehub_upstream_transitions_total{to="offline"} 1`,
		`edgehub_upstream_failovers_total 0`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	l.restore()
	h.waitOnline(t, true)
	if code, body := get("/readyz"); code != 200 || !strings.Contains(body, "online") {
		t.Errorf("/readyz online = %d %q", code, body)
	}
}

// A fresh start with the link down serves what the last run cached, from
// disk, with no upstream ever answering this process.
func TestRestartOffline(t *testing.T) {
	ca := newTestCA(t)
	f := newFakeAPIServer(t, ca)
	seed(f)
	l := newLink(t, f.srv.Listener.Addr().String())
	data := filepath.Join(t.TempDir(), "data")
	h := startHub(t, ca, data, l.url())
	h.waitOnline(t, true)
	want, err := h.nodeClient(t).CoreV1().Pods("").List(context.Background(), metav1.ListOptions{FieldSelector: "spec.nodeName=edge-1"})
	must(t, err)
	h.stop(t)
	l.cut()

	h2 := startHub(t, ca, data, l.url())
	if online, _ := h2.srv.Balancer().Online(); online {
		t.Fatal("online at start with the link cut")
	}
	got, err := h2.nodeClient(t).CoreV1().Pods("").List(context.Background(), metav1.ListOptions{FieldSelector: "spec.nodeName=edge-1"})
	must(t, err)
	if a, b := podNames(got), podNames(want); strings.Join(a, ",") != strings.Join(b, ",") {
		t.Fatalf("after restart offline: %v, before: %v", a, b)
	}
}

func TestConfig(t *testing.T) {
	good := "apiVersion: edgehub.edgeadm.io/v1alpha1\nkind: EdgeHubConfiguration\nnodeName: edge-1\nupstreams: [\"https://kubernetes.default:6443\"]\n"
	c, err := ParseConfig([]byte(good), "cfg")
	must(t, err)
	if c.ListenAddress != DefaultListenAddress || c.HealthAddress != DefaultHealthAddress || c.DataDir != DefaultDataDir ||
		c.ClusterCAFile != DefaultClusterCAFile || c.NodeCertificateFile != DefaultNodeCertificateFile {
		t.Fatalf("defaults not applied: %+v", c)
	}
	for _, bad := range []struct{ yaml, want string }{
		{good + "listenAdress: 1.2.3.4:1\n", `unknown field "listenAdress"`},
		{strings.Replace(good, "nodeName: edge-1\n", "", 1), "nodeName is empty"},
		{strings.Replace(good, "https://kubernetes.default:6443", "http://x:1/path", 1), "must be https://host[:port]"},
		{strings.Replace(good, "v1alpha1", "v9", 1), "apiVersion"},
		{good + "dataDir: relative/dir\n", "absolute"},
	} {
		_, err := ParseConfig([]byte(bad.yaml), "cfg")
		if err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("config %q: err %v, want one naming %q", bad.yaml, err, bad.want)
		}
	}
}

func TestEnsurePKIIdempotent(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pki")
	must(t, EnsurePKI(dir, time.Now()))
	read := func() map[string]string {
		m := map[string]string{}
		for _, n := range []string{CAFileName, CAKeyFileName, ServingCertName, ServingKeyName} {
			b, err := os.ReadFile(filepath.Join(dir, n))
			must(t, err)
			fi, _ := os.Stat(filepath.Join(dir, n))
			m[n] = fi.Mode().Perm().String() + string(b)
		}
		return m
	}
	first := read()
	must(t, EnsurePKI(dir, time.Now()))
	second := read()
	for n := range first {
		if first[n] != second[n] {
			t.Errorf("%s changed on a second EnsurePKI", n)
		}
	}
	for n, want := range map[string]os.FileMode{CAKeyFileName: 0o600, ServingKeyName: 0o600, CAFileName: 0o644} {
		fi, _ := os.Stat(filepath.Join(dir, n))
		if fi.Mode().Perm() != want {
			t.Errorf("%s mode %v, want %v", n, fi.Mode().Perm(), want)
		}
	}
	if fi, _ := os.Stat(dir); fi.Mode().Perm() != 0o700 {
		t.Errorf("pki dir mode %v", fi.Mode().Perm())
	}
	// Near its end the serving certificate is re-issued, the CA kept.
	must(t, EnsurePKI(dir, time.Now().Add(pkiValidity-renewBefore/2)))
	third := read()
	if third[CAFileName] != first[CAFileName] || third[ServingCertName] == first[ServingCertName] {
		t.Error("renewal should keep the CA and re-issue the serving certificate")
	}
	// Half a CA is an error naming the fix, not a silent new CA.
	must(t, os.Remove(filepath.Join(dir, CAKeyFileName)))
	if err := EnsurePKI(dir, time.Now()); err == nil || !strings.Contains(err.Error(), "remove both") {
		t.Errorf("half a CA: %v", err)
	}
}

var _ = klog.Background

// Endpoints learned from the cluster's default/kubernetes EndpointSlices
// are used once probes answer, and carry edgehub through the loss of the
// configured upstream.
func TestLearnedEndpoints(t *testing.T) {
	ca := newTestCA(t)
	a, b := newFakeAPIServer(t, ca), newFakeAPIServer(t, ca)
	b.addPod(pod("default", "p", "edge-1", nil, corev1.PodRunning))
	la := newLink(t, a.srv.Listener.Addr().String())
	host, port, _ := strings.Cut(b.srv.Listener.Addr().String(), ":")
	sl := `{"items":[{"addressType":"IPv4","endpoints":[{"addresses":["` + host + `"],"conditions":{"ready":true}}],"ports":[{"name":"https","port":` + port + `}]}]}`
	a.slices.Store(&sl)
	tuning := testTuning()
	tuning.LearnInterval = 50 * time.Millisecond
	// Timing is not what this test is about. It failed once at load 6-9,
	// likely three 500 ms probe timeouts in a row marking the learned
	// endpoint down; a cut link fails at once, so longer bounds cost nothing.
	tuning.ProbeTimeout, tuning.DialTimeout = 3*time.Second, 3*time.Second
	h := startHubTuned(t, ca, "", tuning, la.url())
	h.waitOnline(t, true)
	deadline := time.Now().Add(10 * time.Second)
	for len(h.srv.Balancer().Candidates()) < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("learned endpoint not in use within 10s: %v", h.srv.Balancer().Candidates())
		}
		time.Sleep(10 * time.Millisecond)
	}
	la.cut()
	_, err := h.nodeClient(t).CoreV1().Pods("default").Get(context.Background(), "p", metav1.GetOptions{})
	must(t, err)
	for h.srv.Balancer().Active().String() != "https://"+b.srv.Listener.Addr().String() {
		if time.Now().After(deadline.Add(10 * time.Second)) {
			t.Fatal("no failover to the learned endpoint")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if online, _ := h.srv.Balancer().Online(); !online {
		t.Fatal("offline although the learned endpoint answers")
	}
}
