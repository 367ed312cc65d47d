package edgehub

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	toolscache "k8s.io/client-go/tools/cache"

	"github.com/edgeadm/edgeadm/pkg/edgehub/cache"
)

var podsGVR = schema.GroupVersionResource{Version: "v1", Resource: "pods"}

// waitRecorded waits (bounded) until edgehub's recorder has applied what
// was queued so far.
func (h *hub) waitRecorded(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := h.srv.handler.Recorder.Wait(ctx); err != nil {
		t.Fatalf("recorder did not drain within 10s: %v", err)
	}
}

func (h *hub) recorded(t testing.TB, identity string, scope cache.Scope) []string {
	t.Helper()
	res, ok, err := h.store.List(identity, scope)
	must(t, err)
	if !ok {
		return nil
	}
	var out []string
	for _, it := range res.Items {
		var p corev1.Pod
		must(t, json.Unmarshal(it, &p))
		out = append(out, p.Namespace+"/"+p.Name)
	}
	return out
}

// The recorder applies work in submission order; Wait returns once what
// was queued before it is applied; a full queue (by count or by bytes)
// refuses work at once instead of making the submitter wait.
func TestRecorderOrderWaitAndFullQueue(t *testing.T) {
	r := newRecorderSized(3, 100)
	release := make(chan struct{})
	var mu sync.Mutex
	var order []int
	add := func(i int) func() {
		return func() { mu.Lock(); order = append(order, i); mu.Unlock() }
	}
	if res := r.submit(10, func() { <-release }); res != submitQueued {
		t.Fatalf("first submit: %v", res)
	}
	if res := r.submit(95, add(0)); res != submitFull {
		t.Fatalf("submit past the byte budget = %v, want submitFull", res)
	}
	for i := 1; i <= 2; i++ {
		if res := r.submit(10, add(i)); res != submitQueued {
			t.Fatalf("submit %d: %v", i, res)
		}
	}
	if res := r.submit(1, add(9)); res != submitFull {
		t.Fatalf("submit to a full queue = %v, want submitFull", res)
	}
	go r.Run()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	if err := r.Wait(ctx); err == nil {
		t.Fatal("Wait returned while the worker was blocked")
	}
	cancel()
	close(release)
	ctx, cancel = context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	must(t, r.Wait(ctx))
	mu.Lock()
	if fmt.Sprint(order) != "[1 2]" {
		t.Fatalf("applied %v, want [1 2]", order)
	}
	mu.Unlock()
	if res := r.submit(95, add(3)); res != submitQueued {
		t.Fatalf("submit after draining = %v, want the byte budget back", res)
	}
	r.Close()
	if res := r.submit(1, add(4)); res != submitClosed {
		t.Fatalf("submit after Close = %v, want submitClosed", res)
	}
	must(t, r.Wait(ctx))
}

// A LIST is recorded in the background; the same LIST answered at the
// same resourceVersion is not recorded again, unless something else was
// written to the resource in between; a changed answer is recorded.
func TestListRecordedOnceperResourceVersion(t *testing.T) {
	ca := newTestCA(t)
	f := newFakeAPIServer(t, ca)
	seed(f)
	h := startHub(t, ca, "", f.srv.URL)
	h.waitOnline(t, true)
	c := h.nodeClient(t)
	ctx := context.Background()
	skipped := h.srv.Metrics().RecordSkipped
	scope := cache.Scope{GVR: podsGVR, Namespace: "default"}

	list := func() {
		t.Helper()
		_, err := c.CoreV1().Pods("default").List(ctx, metav1.ListOptions{})
		must(t, err)
		h.waitRecorded(t)
	}
	list()
	if got := h.recorded(t, "node", scope); fmt.Sprint(got) != "[default/db-1 default/web-1 default/web-2]" {
		t.Fatalf("recorded %v after one LIST", got)
	}
	list()
	if got := testutil.ToFloat64(skipped); got != 1 {
		t.Fatalf("skipped recordings = %v after the same LIST twice, want 1", got)
	}
	// A GET writes the resource: the next LIST is recorded again.
	_, err := c.CoreV1().Pods("default").Get(ctx, "db-1", metav1.GetOptions{})
	must(t, err)
	list()
	if got := testutil.ToFloat64(skipped); got != 1 {
		t.Fatalf("skipped recordings = %v, want the LIST after a GET recorded", got)
	}
	f.addPod(pod("default", "new", "edge-1", nil, corev1.PodRunning))
	list()
	if got := h.recorded(t, "node", scope); fmt.Sprint(got) != "[default/db-1 default/new default/web-1 default/web-2]" {
		t.Fatalf("recorded %v after a LIST at a new resourceVersion", got)
	}
	if got := testutil.ToFloat64(h.srv.Metrics().RecordErrors); got != 0 {
		t.Fatalf("record errors = %v", got)
	}
}

// A LIST answer still queued when a newer answer for the same scope is
// queued behind it is not recorded: the newer one sets the same objects.
func TestQueuedListSuperseded(t *testing.T) {
	ca := newTestCA(t)
	f := newFakeAPIServer(t, ca)
	seed(f)
	h := startHub(t, ca, "", f.srv.URL)
	h.waitOnline(t, true)
	c := h.nodeClient(t)
	ctx := context.Background()
	release := make(chan struct{})
	if res := h.srv.handler.Recorder.submit(0, func() { <-release }); res != submitQueued {
		t.Fatalf("blocking job: %v", res)
	}
	_, err := c.CoreV1().Pods("default").List(ctx, metav1.ListOptions{})
	must(t, err)
	f.addPod(pod("default", "new", "edge-1", nil, corev1.PodRunning))
	_, err = c.CoreV1().Pods("default").List(ctx, metav1.ListOptions{})
	must(t, err)
	// Paginated: may be partial, so it supersedes nothing (and is not
	// recorded as the complete answer it is not).
	_, err = c.CoreV1().Pods("kube-system").List(ctx, metav1.ListOptions{Limit: 10})
	must(t, err)
	close(release)
	h.waitRecorded(t)
	if got := testutil.ToFloat64(h.srv.Metrics().RecordSkipped); got != 1 {
		t.Fatalf("skipped recordings = %v, want the older queued LIST skipped", got)
	}
	if got := h.recorded(t, "node", cache.Scope{GVR: podsGVR, Namespace: "default"}); fmt.Sprint(got) != "[default/db-1 default/new default/web-1 default/web-2]" {
		t.Fatalf("recorded %v, want the newer LIST", got)
	}
}

// An answer above the recording limit reaches the client whole and is
// not recorded (counted); a full recorder queue drops the recording
// (counted) and the client gets its answer without waiting.
func TestRecordingDropped(t *testing.T) {
	ca := newTestCA(t)
	f := newFakeAPIServer(t, ca)
	seed(f)
	h := startHub(t, ca, "", f.srv.URL)
	h.waitOnline(t, true)
	c := h.nodeClient(t)
	ctx := context.Background()
	dropped := h.srv.Metrics().RecordDropped

	h.srv.handler.maxRecord.Store(512)
	got, err := c.CoreV1().Pods("").List(ctx, metav1.ListOptions{})
	must(t, err)
	if len(got.Items) != 4 {
		t.Fatalf("LIST above the recording limit: %v, want all 4 pods", podNames(got))
	}
	h.waitRecorded(t)
	if n := testutil.ToFloat64(dropped.WithLabelValues(dropTooLarge)); n != 1 {
		t.Fatalf("too_large drops = %v, want 1", n)
	}
	if rec := h.recorded(t, "node", cache.Scope{GVR: podsGVR}); rec != nil {
		t.Fatalf("an answer above the limit was recorded: %v", rec)
	}
	h.srv.handler.maxRecord.Store(0)

	// Block the worker and fill its queue.
	rec := h.srv.handler.Recorder
	release := make(chan struct{})
	defer func() {
		select {
		case <-release:
		default:
			close(release)
		}
	}()
	if res := rec.submit(0, func() { <-release }); res != submitQueued {
		t.Fatalf("blocking job: %v", res)
	}
	for rec.submit(0, func() {}) == submitQueued {
	}
	got, err = c.CoreV1().Pods("kube-system").List(ctx, metav1.ListOptions{})
	must(t, err)
	if len(got.Items) != 1 {
		t.Fatalf("LIST with the recorder's queue full: %v", podNames(got))
	}
	if n := testutil.ToFloat64(dropped.WithLabelValues(dropQueueFull)); n != 1 {
		t.Fatalf("queue_full drops = %v, want 1", n)
	}
	close(release)
	h.waitRecorded(t)
	if rec := h.recorded(t, "node", cache.Scope{GVR: podsGVR, Namespace: "kube-system"}); rec != nil {
		t.Fatalf("a dropped recording reached the cache: %v", rec)
	}
}

// Stopping edgehub applies the queued recordings before the store is
// closed: a LIST answered just before the stop is on disk.
func TestStopDrainsRecorder(t *testing.T) {
	ca := newTestCA(t)
	f := newFakeAPIServer(t, ca)
	seed(f)
	h := startHub(t, ca, "", f.srv.URL)
	h.waitOnline(t, true)
	rec := h.srv.handler.Recorder
	release := make(chan struct{})
	if res := rec.submit(0, func() { <-release }); res != submitQueued {
		t.Fatalf("blocking job: %v", res)
	}
	_, err := h.nodeClient(t).CoreV1().Pods("default").List(context.Background(), metav1.ListOptions{})
	must(t, err)
	// Stop while the recording is still queued behind the blocked job.
	stopped := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		stopped <- h.srv.Stop(ctx)
	}()
	close(release)
	select {
	case <-stopped:
	case <-time.After(20 * time.Second):
		t.Fatal("Stop did not return within 20s")
	}
	must(t, h.store.Close())
	h.srv = nil
	dataDir := h.cfg.DataDir
	store, err := cache.Open(h.cfg.CacheDir(), cache.Options{})
	must(t, err)
	defer store.Close()
	res, ok, err := store.List("node", cache.Scope{GVR: podsGVR, Namespace: "default"})
	must(t, err)
	if !ok || len(res.Items) != 3 {
		t.Fatalf("after stop, %s holds ok=%v %d items, want the LIST's 3 pods", dataDir, ok, len(res.Items))
	}
}

// gzipAPIServer answers one pod LIST gzip-compressed when asked for gzip,
// and notes what edgehub asked for.
type gzipAPIServer struct {
	srv     *httptest.Server
	mu      sync.Mutex
	encodes []string
	body    []byte
}

func newGzipAPIServer(t testing.TB, ca *testCA, list *corev1.PodList) *gzipAPIServer {
	g := &gzipAPIServer{}
	g.body, _ = json.Marshal(list)
	g.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/readyz" {
			fmt.Fprint(w, "ok")
			return
		}
		g.mu.Lock()
		g.encodes = append(g.encodes, r.Header.Get("Accept-Encoding"))
		g.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		if !strings.Contains(r.Header.Get("Accept-Encoding"), "gzip") {
			_, _ = w.Write(g.body)
			return
		}
		w.Header().Set("Content-Encoding", "gzip")
		zw := gzip.NewWriter(w)
		_, _ = zw.Write(g.body)
		_ = zw.Close()
	}))
	certPEM, keyPEM := ca.issue(t, "kube-apiserver", nil, net.ParseIP("127.0.0.1"))
	g.srv.TLS = tlsServerConfig(t, ca, certPEM, keyPEM)
	g.srv.StartTLS()
	t.Cleanup(g.srv.Close)
	return g
}

// A client that accepts gzip gets the apiserver's compressed answer as it
// came; the recorder inflates its copy. A client that does not gets it
// inflated.
func TestGzipPassesThroughAndIsRecorded(t *testing.T) {
	ca := newTestCA(t)
	list := &corev1.PodList{TypeMeta: metav1.TypeMeta{Kind: "PodList", APIVersion: "v1"}, ListMeta: metav1.ListMeta{ResourceVersion: "77"}}
	for i := 0; i < 50; i++ {
		p := pod("default", fmt.Sprintf("p-%02d", i), "edge-1", nil, corev1.PodRunning)
		p.ResourceVersion = fmt.Sprint(i + 1)
		list.Items = append(list.Items, *p)
	}
	g := newGzipAPIServer(t, ca, list)
	h := startHub(t, ca, "", g.srv.URL)
	h.waitOnline(t, true)
	cl := h.httpClient(t)
	url := "https://" + h.srv.APIAddr() + "/api/v1/namespaces/default/pods"

	req, _ := http.NewRequest(http.MethodGet, url, nil)
	req.Header.Set("Accept-Encoding", "gzip") // set by hand: the transport leaves the body compressed
	resp, err := cl.Do(req)
	must(t, err)
	raw, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	must(t, err)
	if resp.Header.Get("Content-Encoding") != "gzip" {
		t.Fatalf("answer to a client accepting gzip has Content-Encoding %q", resp.Header.Get("Content-Encoding"))
	}
	zr, err := gzip.NewReader(bytes.NewReader(raw))
	must(t, err)
	plain, err := io.ReadAll(zr)
	must(t, err)
	if !bytes.Equal(plain, g.body) {
		t.Fatal("the inflated answer differs from the apiserver's")
	}
	h.waitRecorded(t)
	got := h.recorded(t, "node", cache.Scope{GVR: podsGVR, Namespace: "default"})
	if len(got) != 50 {
		t.Fatalf("recorded %d pods from the gzip answer, want 50", len(got))
	}
	// The same answer again: recognised from its head, not recorded again.
	req, _ = http.NewRequest(http.MethodGet, url, nil)
	req.Header.Set("Accept-Encoding", "gzip")
	resp, err = cl.Do(req)
	must(t, err)
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	h.waitRecorded(t)
	if n := testutil.ToFloat64(h.srv.Metrics().RecordSkipped); n != 1 {
		t.Fatalf("skipped recordings = %v after the same gzip answer twice, want 1", n)
	}

	req, _ = http.NewRequest(http.MethodGet, url+"?labelSelector=x%3Dy", nil)
	req.Header.Set("Accept-Encoding", "identity")
	resp, err = cl.Do(req)
	must(t, err)
	raw, err = io.ReadAll(resp.Body)
	resp.Body.Close()
	must(t, err)
	if enc := resp.Header.Get("Content-Encoding"); enc != "" || !bytes.Equal(raw, g.body) {
		t.Fatalf("answer to a client not accepting gzip: Content-Encoding %q, equal to the apiserver's %v", enc, bytes.Equal(raw, g.body))
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.encodes) != 3 || g.encodes[0] != "gzip" {
		t.Fatalf("edgehub asked upstream for encodings %q, want gzip first", g.encodes)
	}
}

// An upstream answer that breaks off mid-way reaches the client as a
// broken answer, never as a short one, and is not recorded. Chunked, so
// that only edgehub's abort tells the client.
func TestBrokenAnswerAborted(t *testing.T) {
	ca := newTestCA(t)
	up := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/readyz" {
			fmt.Fprint(w, "ok")
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"kind":"PodList","apiVersion":"v1","metadata":{"resourceVersion":"5"},"items":[` + strings.Repeat(" ", 100<<10)))
		http.NewResponseController(w).Flush()
		panic(http.ErrAbortHandler)
	}))
	certPEM, keyPEM := ca.issue(t, "kube-apiserver", nil, net.ParseIP("127.0.0.1"))
	up.TLS = tlsServerConfig(t, ca, certPEM, keyPEM)
	up.StartTLS()
	t.Cleanup(up.Close)
	h := startHub(t, ca, "", up.URL)
	h.waitOnline(t, true)
	resp, err := h.httpClient(t).Get("https://" + h.srv.APIAddr() + "/api/v1/pods")
	if err == nil {
		_, err = io.ReadAll(resp.Body)
		resp.Body.Close()
	}
	if err == nil {
		t.Fatal("a broken upstream answer reached the client as a complete one")
	}
	h.waitRecorded(t)
	if rec := h.recorded(t, "node", cache.Scope{GVR: podsGVR}); rec != nil {
		t.Fatalf("a broken answer was recorded: %v", rec)
	}
}

func tlsServerConfig(t testing.TB, ca *testCA, certPEM, keyPEM []byte) *tls.Config {
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	must(t, err)
	pool := x509.NewCertPool()
	pool.AddCert(ca.cert)
	return &tls.Config{Certificates: []tls.Certificate{pair}, ClientAuth: tls.VerifyClientCertIfGiven, ClientCAs: pool}
}

func TestReadListHead(t *testing.T) {
	for _, tc := range []struct{ body, want string }{
		{`{"kind":"PodList","apiVersion":"v1","metadata":{"resourceVersion":"9","continue":"c"},"items":[{"x":1}]}`, "PodList v1 9 c"},
		{`{"items":[],"metadata":{"resourceVersion":"3"},"apiVersion":"v1","kind":"PodList"}`, "PodList v1 3 "},
		{` {"kind":"PodList","metadata":{},"items":null}`, "PodList  0 "},
	} {
		h, _, err := readListHeadAt([]byte(tc.body))
		must(t, err)
		rv := h.Metadata.ResourceVersion
		if rv == "" {
			rv = "0"
		}
		if got := strings.Join([]string{h.Kind, h.APIVersion, rv, h.Metadata.Continue}, " "); got != tc.want {
			t.Errorf("readListHeadAt(%s) = %q, want %q", tc.body, got, tc.want)
		}
	}
	if _, _, err := readListHeadAt([]byte(`[1]`)); err == nil {
		t.Error("a JSON array was read as a list")
	}
}

func TestAcceptsGzip(t *testing.T) {
	for in, want := range map[string]bool{
		"": false, "gzip": true, "deflate, gzip;q=1.0": true, "GZIP": true, "gzip;q=0": false, "identity": false, "br, gzip ; q=0.5": true,
	} {
		if got := acceptsGzip(in); got != want {
			t.Errorf("acceptsGzip(%q) = %v, want %v", in, got, want)
		}
	}
}

// A HEAD is relayed and records nothing (and no error).
func TestHeadNotRecorded(t *testing.T) {
	ca := newTestCA(t)
	g := newGzipAPIServer(t, ca, &corev1.PodList{TypeMeta: metav1.TypeMeta{Kind: "PodList", APIVersion: "v1"}})
	h := startHub(t, ca, "", g.srv.URL)
	h.waitOnline(t, true)
	resp, err := h.httpClient(t).Head("https://" + h.srv.APIAddr() + "/api/v1/namespaces/default/pods/db-1")
	must(t, err)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("HEAD: %s", resp.Status)
	}
	h.waitRecorded(t)
	if n := testutil.ToFloat64(h.srv.Metrics().RecordErrors); n != 0 {
		t.Fatalf("record errors after a HEAD = %v", n)
	}
}

// A watch event meeting a full recorder queue is relayed, not recorded, and
// ends the watch with 410 Expired (counted once), so the client lists
// again: the cache keeps the state as of the last recorded event, and no
// later event is recorded over a hole.
func TestWatchEndsExpiredAfterDrop(t *testing.T) {
	ca := newTestCA(t)
	f := newFakeAPIServer(t, ca)
	h := startHub(t, ca, "", f.srv.URL)
	h.waitOnline(t, true)
	rec := h.srv.handler.Recorder
	release, unblock := blockRecorder(t)
	if res := rec.submit(0, func() { <-release }); res != submitQueued {
		t.Fatalf("blocking job: %v", res)
	}
	for rec.submit(0, func() {}) == submitQueued {
	}
	ev := func(typ, name string) string {
		p := pod("default", name, "edge-1", map[string]string{"app": "x"}, corev1.PodRunning)
		p.TypeMeta = metav1.TypeMeta{Kind: "Pod", APIVersion: "v1"}
		p.ResourceVersion = "20"
		b, _ := json.Marshal(map[string]any{"type": typ, "object": p})
		return string(b)
	}
	w, err := h.nodeClient(t).CoreV1().Pods("default").Watch(context.Background(), metav1.ListOptions{LabelSelector: "app=x"})
	must(t, err)
	defer w.Stop()
	next := func() watch.Event {
		t.Helper()
		select {
		case e, ok := <-w.ResultChan():
			if !ok {
				t.Fatal("watch closed early")
			}
			return e
		case <-time.After(10 * time.Second):
			t.Fatal("no event relayed within 10s")
		}
		return watch.Event{}
	}
	f.events <- ev("ADDED", "a")
	if e := next(); e.Type != watch.Added {
		t.Fatalf("first event %v %#v, want the pod ADDED", e.Type, e.Object)
	}
	e := next()
	if st, ok := e.Object.(*metav1.Status); e.Type != watch.Error || !ok || st.Code != http.StatusGone || st.Reason != metav1.StatusReasonExpired {
		t.Fatalf("after the drop: %v %#v, want ERROR 410 Expired", e.Type, e.Object)
	}
	select {
	case e, ok := <-w.ResultChan():
		if ok {
			t.Fatalf("watch goes on after Expired: %v %#v", e.Type, e.Object)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("watch not closed within 10s of Expired")
	}
	unblock()
	h.waitRecorded(t)
	if _, ok := h.store.Get("node", podsGVR, "default", "a"); ok {
		t.Error("pod a recorded from a watch event that was dropped")
	}
	if n := testutil.ToFloat64(h.srv.Metrics().RecordDropped.WithLabelValues(dropQueueFull)); n != 1 {
		t.Fatalf("queue_full drops = %v, want 1", n)
	}
}

// Items cut out of a LIST answer are exactly encoding/json's, whatever
// strings and nesting they hold; layouts other than the apiserver's fall
// back to encoding/json; broken answers are refused.
func TestListItems(t *testing.T) {
	for i, body := range []string{
		`{"kind":"PodList","apiVersion":"v1","metadata":{"resourceVersion":"9"},"items":[{"a":"x]}\\\"[{,"},{"b":[1,[2,{"c":"}"}]]} , {} ]}`,
		`{"kind":"PodList","apiVersion":"v1","metadata":{"resourceVersion":"9"},"items":[]}`,
		`{"kind":"PodList","apiVersion":"v1","metadata":{"resourceVersion":"9"},"items":null}` + "\n",
		"{ \"kind\" : \"PodList\", \"metadata\" : {} , \"items\" :\n[ {\"x\":1}\n,\n{\"y\":\"\\u005d\"} ]\n}\n",
		`{"items":[{"x":1}],"kind":"PodList","metadata":{"resourceVersion":"3"}}`,
		`{"kind":"PodList","metadata":{"resourceVersion":"3"},"items":[{"x":1}],"extra":{"y":2}}`,
	} {
		head, at, err := readListHeadAt([]byte(body))
		must(t, err)
		_, items, err := listItems([]byte(body), head, at)
		must(t, err)
		if _, fast := cutItems([]byte(body)[at:]); fast != (i < 4) {
			t.Errorf("%s: cut without decoding = %v (items at %d)", body, fast, at)
		}
		var want listBody
		must(t, json.Unmarshal([]byte(body), &want))
		if len(items) != len(want.Items) {
			t.Errorf("%s: %d items, want %d", body, len(items), len(want.Items))
			continue
		}
		for i := range items {
			if !bytes.Equal(items[i], want.Items[i]) {
				t.Errorf("%s: item %d = %s, want %s", body, i, items[i], want.Items[i])
			}
		}
	}
	for _, body := range []string{
		`{"kind":"PodList","metadata":{},"items":[{"x":1},]}`,
		`{"kind":"PodList","metadata":{},"items":[{"x":1}`,
		`{"kind":"PodList","metadata":{},"items":[{"x":"1}]}`,
		`{"kind":"PodList","metadata":{},"items":[{"x":1}]`,
		`{"kind":"PodList","metadata":{},"items":[,{"x":1}]}`,
	} {
		head, at, err := readListHeadAt([]byte(body))
		if err != nil {
			continue
		}
		if _, items, err := listItems([]byte(body), head, at); err == nil {
			t.Errorf("%s: cut into %q, want an error", body, items)
		}
	}
}

// The Expired that ends a watch whose recording was dropped makes a
// client-go reflector LIST again (the answer edgehub then records whole).
func TestExpiredWatchMakesReflectorListAgain(t *testing.T) {
	ca := newTestCA(t)
	f := newFakeAPIServer(t, ca)
	f.addPod(pod("default", "a", "edge-1", nil, corev1.PodRunning))
	h := startHub(t, ca, "", f.srv.URL)
	h.waitOnline(t, true)
	lists := func() int {
		f.mu.Lock()
		defer f.mu.Unlock()
		n := 0
		for _, c := range f.calls {
			if c.Method == http.MethodGet && c.Path == "/api/v1/namespaces/default/pods" && !strings.Contains(c.Query, "watch=true") {
				n++
			}
		}
		return n
	}
	lw := toolscache.NewListWatchFromClient(h.nodeClient(t).CoreV1().RESTClient(), "pods", "default", fields.Everything())
	store := toolscache.NewStore(toolscache.MetaNamespaceKeyFunc)
	r := toolscache.NewReflector(listThenWatch{lw}, &corev1.Pod{}, store, 0)
	stop := make(chan struct{})
	defer close(stop)
	go r.Run(stop)
	waitFor(t, 10*time.Second, "the reflector's first LIST", func() bool { return lists() == 1 && len(store.List()) == 1 })
	waitFor(t, 10*time.Second, "the reflector's watch", func() bool {
		f.mu.Lock()
		defer f.mu.Unlock()
		for _, c := range f.calls {
			if strings.Contains(c.Query, "watch=true") {
				return true
			}
		}
		return false
	})

	rec := h.srv.handler.Recorder
	release, unblock := blockRecorder(t)
	if res := rec.submit(0, func() { <-release }); res != submitQueued {
		t.Fatalf("blocking job: %v", res)
	}
	for rec.submit(0, func() {}) == submitQueued {
	}
	p := pod("default", "b", "edge-1", nil, corev1.PodRunning)
	p.TypeMeta = metav1.TypeMeta{Kind: "Pod", APIVersion: "v1"}
	p.ResourceVersion = "999"
	ev, _ := json.Marshal(map[string]any{"type": "ADDED", "object": p})
	f.events <- string(ev)
	waitFor(t, 20*time.Second, "a second LIST after the Expired watch", func() bool { return lists() >= 2 })
	unblock()
}

// blockRecorder returns a channel a recorder job can wait on and the
// function that releases it, also called when the test ends (before the
// hub stops: stopping drains the recorder), so a failing test ends.
func blockRecorder(t *testing.T) (<-chan struct{}, func()) {
	release := make(chan struct{})
	var once sync.Once
	unblock := func() { once.Do(func() { close(release) }) }
	t.Cleanup(unblock)
	return release, unblock
}

// listThenWatch makes a reflector LIST then WATCH: the fake apiserver
// does not serve watch-list (sendInitialEvents), which reflectors prefer.
type listThenWatch struct{ *toolscache.ListWatch }

func (listThenWatch) IsWatchListSemanticsUnSupported() bool { return true }

// waitFor polls cond until it holds or timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
