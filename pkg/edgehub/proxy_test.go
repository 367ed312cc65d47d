package edgehub

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

func seed(f *fakeAPIServer) {
	f.addPod(pod("default", "web-1", "edge-1", map[string]string{"app": "web", "tier": "front"}, corev1.PodRunning))
	f.addPod(pod("default", "web-2", "edge-2", map[string]string{"app": "web", "tier": "front"}, corev1.PodPending))
	f.addPod(pod("default", "db-1", "edge-1", map[string]string{"app": "db"}, corev1.PodRunning))
	f.addPod(pod("kube-system", "proxy-1", "edge-1", map[string]string{"app": "proxy"}, corev1.PodRunning))
}

func podNames(l *corev1.PodList) []string {
	var out []string
	for _, p := range l.Items {
		out = append(out, p.Namespace+"/"+p.Name+"@"+p.ResourceVersion)
	}
	return out
}

var selectorCases = []struct {
	ns     string
	labels string
	fields string
}{
	{"", "", ""},
	{"default", "", ""},
	{"", "app=web", ""},
	{"default", "app in (web,db),tier!=front", ""},
	{"", "", "spec.nodeName=edge-1"},
	{"default", "app=web", "spec.nodeName=edge-1"},
	{"", "", "spec.nodeName=edge-1,status.phase=Running"},
}

// Online every read goes upstream with the node's credentials and the
// answer is fresh; offline the same reads get the last online answers.
func TestOnlineFreshOfflineFromCache(t *testing.T) {
	ca := newTestCA(t)
	f := newFakeAPIServer(t, ca)
	seed(f)
	l := newLink(t, f.srv.Listener.Addr().String())
	h := startHub(t, ca, "", l.url())
	h.waitOnline(t, true)
	c := h.nodeClient(t)
	ctx := context.Background()

	// Fresh: a change upstream shows at once, no stale read.
	_, err := c.CoreV1().Pods("").List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
	must(t, err)
	f.addPod(pod("default", "web-3", "edge-1", map[string]string{"app": "web"}, corev1.PodRunning))
	got, err := c.CoreV1().Pods("").List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
	must(t, err)
	if len(got.Items) != 3 {
		t.Fatalf("online LIST after a change upstream: %v, want 3 web pods", podNames(got))
	}
	online := map[int][]string{}
	for i, sc := range selectorCases {
		got, err := c.CoreV1().Pods(sc.ns).List(ctx, metav1.ListOptions{LabelSelector: sc.labels, FieldSelector: sc.fields})
		must(t, err)
		online[i] = podNames(got)
	}
	// Added after every LIST: never read by the node.
	f.addPod(pod("default", "late", "edge-1", map[string]string{"app": "late"}, corev1.PodRunning))
	p, err := c.CoreV1().Pods("default").Get(ctx, "db-1", metav1.GetOptions{})
	must(t, err)

	calls := f.callLog()
	for _, cl := range calls {
		if cl.CertCN != "system:node:edge-1" || cl.Authorization != "" {
			t.Errorf("upstream call %s %s went with cert %q auth %q, want the node's certificate only", cl.Method, cl.Path, cl.CertCN, cl.Authorization)
		}
		if cl.Accept != "application/json" {
			t.Errorf("upstream call %s asked for %q, want application/json", cl.Path, cl.Accept)
		}
	}

	l.cut()
	h.waitOnline(t, false)
	for i, sc := range selectorCases {
		got, err := c.CoreV1().Pods(sc.ns).List(ctx, metav1.ListOptions{LabelSelector: sc.labels, FieldSelector: sc.fields})
		if err != nil {
			t.Errorf("offline LIST %+v: %v", sc, err)
			continue
		}
		if fmt.Sprint(podNames(got)) != fmt.Sprint(online[i]) {
			t.Errorf("offline LIST %+v = %v, online it was %v", sc, podNames(got), online[i])
		}
	}
	got2, err := c.CoreV1().Pods("default").Get(ctx, "db-1", metav1.GetOptions{})
	must(t, err)
	if got2.ResourceVersion != p.ResourceVersion || got2.UID != p.UID {
		t.Errorf("offline GET = %s@%s, online %s@%s", got2.UID, got2.ResourceVersion, p.UID, p.ResourceVersion)
	}

	// Never read, never invented.
	_, err = c.CoreV1().Pods("default").Get(ctx, "late", metav1.GetOptions{})
	wantUnavailable(t, err, "was never read")
	// A narrower selector is answered from a covering LIST (all pods).
	got, err = c.CoreV1().Pods("kube-system").List(ctx, metav1.ListOptions{LabelSelector: "app=proxy"})
	must(t, err)
	if fmt.Sprint(podNames(got)) != "[kube-system/proxy-1@104]" {
		t.Errorf("offline LIST covered by the all-pods LIST: %v", podNames(got))
	}
	_, err = c.CoreV1().ConfigMaps("default").List(ctx, metav1.ListOptions{})
	wantUnavailable(t, err, "was never listed")

	// Writes fail loudly with a Status.
	_, err = c.CoreV1().Pods("default").Create(ctx, pod("default", "new", "edge-1", nil, ""), metav1.CreateOptions{})
	wantUnavailable(t, err, "not sent")
	err = c.CoreV1().Pods("default").Delete(ctx, "db-1", metav1.DeleteOptions{})
	wantUnavailable(t, err, "not sent")

	// Back online: fresh again.
	l.restore()
	h.waitOnline(t, true)
	f.addPod(pod("default", "web-4", "edge-1", map[string]string{"app": "web"}, corev1.PodRunning))
	got, err = c.CoreV1().Pods("").List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
	must(t, err)
	if len(got.Items) != 4 {
		t.Fatalf("LIST back online: %v, want 4 web pods", podNames(got))
	}
}

func wantUnavailable(t *testing.T, err error, msg string) {
	t.Helper()
	var se *apierrors.StatusError
	if !asStatus(err, &se) {
		t.Fatalf("err = %v, want a 503 Status", err)
	}
	s := se.ErrStatus
	if s.Code != http.StatusServiceUnavailable || s.Reason != metav1.StatusReasonServiceUnavailable ||
		!strings.Contains(s.Message, "edgehub") || !strings.Contains(s.Message, "offline") || !strings.Contains(s.Message, msg) {
		t.Fatalf("Status = %d %s %q, want 503 ServiceUnavailable naming edgehub, offline and %q", s.Code, s.Reason, s.Message, msg)
	}
}

func asStatus(err error, se **apierrors.StatusError) bool {
	if err == nil {
		return false
	}
	s, ok := err.(*apierrors.StatusError)
	if ok {
		*se = s
	}
	return ok
}

// Who may read what: the node's cache is the node's; another node's
// certificate, no credentials, or another token get nothing from it.
func TestIdentityRules(t *testing.T) {
	ca := newTestCA(t)
	f := newFakeAPIServer(t, ca)
	seed(f)
	l := newLink(t, f.srv.Listener.Addr().String())
	h := startHub(t, ca, "", l.url())
	h.waitOnline(t, true)
	ctx := context.Background()
	node := h.nodeClient(t)
	_, err := node.CoreV1().Pods("").List(ctx, metav1.ListOptions{})
	must(t, err)

	otherCert, otherKey := ca.issue(t, "system:node:edge-2", []string{"system:nodes"})
	other := h.clientFor(t, h.restConfig(t, otherCert, otherKey, ""))
	_, err = other.CoreV1().Pods("").List(ctx, metav1.ListOptions{})
	if !apierrors.IsForbidden(err) {
		t.Fatalf("another node's certificate online: %v, want 403", err)
	}
	adminCert, adminKey := ca.issue(t, "admin", []string{"system:masters"})
	admin := h.clientFor(t, h.restConfig(t, adminCert, adminKey, ""))
	_, err = admin.CoreV1().Pods("").List(ctx, metav1.ListOptions{})
	if !apierrors.IsForbidden(err) {
		t.Fatalf("a non-node certificate: %v, want 403", err)
	}
	foreign := newTestCA(t)
	fc, fk := foreign.issue(t, "system:node:edge-1", []string{"system:nodes"})
	_, err = h.clientFor(t, h.restConfig(t, fc, fk, "")).CoreV1().Pods("").List(ctx, metav1.ListOptions{})
	if err == nil {
		t.Fatal("a node certificate from another CA was accepted")
	}

	tokenA := h.clientFor(t, h.restConfig(t, nil, nil, "token-a"))
	_, err = tokenA.CoreV1().Pods("default").List(ctx, metav1.ListOptions{})
	must(t, err)
	anon := h.clientFor(t, h.restConfig(t, nil, nil, ""))
	_, err = anon.CoreV1().Pods("").List(ctx, metav1.ListOptions{})
	must(t, err) // forwarded anonymously online (the apiserver decides)
	last := f.callLog()
	if cl := last[len(last)-1]; cl.CertCN != "" || cl.Authorization != "" {
		t.Fatalf("anonymous request went upstream with cert %q auth %q", cl.CertCN, cl.Authorization)
	}
	for _, cl := range last {
		if strings.Contains(cl.Authorization, "token-a") && cl.CertCN != "" {
			t.Fatalf("a token request carried the node certificate %q upstream", cl.CertCN)
		}
	}

	// Impersonation is refused, whoever asks.
	ic := h.restConfig(t, nil, nil, "token-a")
	ic.Impersonate.UserName = "system:admin"
	_, err = h.clientFor(t, ic).CoreV1().Pods("").List(ctx, metav1.ListOptions{})
	if !apierrors.IsForbidden(err) {
		t.Fatalf("impersonation: %v, want 403", err)
	}

	l.cut()
	h.waitOnline(t, false)
	_, err = node.CoreV1().Pods("").List(ctx, metav1.ListOptions{})
	must(t, err)
	_, err = anon.CoreV1().Pods("").List(ctx, metav1.ListOptions{})
	wantUnavailable(t, err, "without credentials")
	_, err = other.CoreV1().Pods("").List(ctx, metav1.ListOptions{})
	if !apierrors.IsForbidden(err) {
		t.Fatalf("another node's certificate offline: %v, want 403", err)
	}
	tokenB := h.clientFor(t, h.restConfig(t, nil, nil, "token-b"))
	_, err = tokenB.CoreV1().Pods("default").List(ctx, metav1.ListOptions{})
	wantUnavailable(t, err, "never listed")
	got, err := tokenA.CoreV1().Pods("default").List(ctx, metav1.ListOptions{})
	must(t, err)
	if len(got.Items) != 3 {
		t.Fatalf("token A offline: %v, want its 3 default pods", podNames(got))
	}
	// The node listed all namespaces; token A's partition holds only
	// what token A read.
	_, err = tokenA.CoreV1().Pods("kube-system").List(ctx, metav1.ListOptions{})
	wantUnavailable(t, err, "never listed")
}

// A WATCH records its events; offline a WATCH stays open without events
// and ends when the link is back.
func TestWatch(t *testing.T) {
	ca := newTestCA(t)
	f := newFakeAPIServer(t, ca)
	l := newLink(t, f.srv.Listener.Addr().String())
	h := startHub(t, ca, "", l.url())
	h.waitOnline(t, true)
	ctx := context.Background()
	c := h.nodeClient(t)

	// A watch-list (client-go's default): initial events, then the
	// bookmark that ends them, then a change.
	ev := func(typ string, p *corev1.Pod, rv string, ann map[string]string) string {
		cp := p.DeepCopy()
		cp.TypeMeta = metav1.TypeMeta{Kind: "Pod", APIVersion: "v1"}
		cp.ResourceVersion = rv
		cp.Annotations = ann
		b, _ := json.Marshal(map[string]any{"type": typ, "object": cp})
		return string(b)
	}
	a := pod("default", "a", "edge-1", map[string]string{"app": "x"}, corev1.PodRunning)
	b := pod("default", "b", "edge-1", map[string]string{"app": "x"}, corev1.PodRunning)
	f.events <- ev("ADDED", a, "10", nil)
	f.events <- ev("ADDED", b, "11", nil)
	f.events <- ev("BOOKMARK", &corev1.Pod{}, "12", map[string]string{initialEventsEnd: "true"})
	f.events <- ev("DELETED", a, "13", nil)
	send := true
	w, err := c.CoreV1().Pods("default").Watch(ctx, metav1.ListOptions{LabelSelector: "app=x", SendInitialEvents: &send,
		ResourceVersionMatch: metav1.ResourceVersionMatchNotOlderThan, AllowWatchBookmarks: true})
	must(t, err)
	var seen []string
	for e := range w.ResultChan() {
		p := e.Object.(*corev1.Pod)
		seen = append(seen, string(e.Type)+":"+p.Name)
		if e.Type == "DELETED" {
			break
		}
	}
	w.Stop()
	if fmt.Sprint(seen) != "[ADDED:a ADDED:b BOOKMARK: DELETED:a]" {
		t.Fatalf("watch relayed %v", seen)
	}
	// Recording is synchronous with relaying; the DELETED was recorded
	// before the client saw it.
	l.cut()
	h.waitOnline(t, false)
	got, err := c.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "app=x"})
	must(t, err)
	if fmt.Sprint(podNames(got)) != "[default/b@11]" {
		t.Fatalf("offline LIST after the watch: %v, want [default/b@11]", podNames(got))
	}
	// Offline a watch-list is refused (client-go falls back to LIST)...
	_, err = c.CoreV1().Pods("default").Watch(ctx, metav1.ListOptions{LabelSelector: "app=x", SendInitialEvents: &send,
		ResourceVersionMatch: metav1.ResourceVersionMatchNotOlderThan, AllowWatchBookmarks: true})
	wantUnavailable(t, err, "LIST instead")
	// ...and a plain watch is held open, with no events, until the link
	// is back.
	req, _ := http.NewRequest(http.MethodGet, "https://"+h.srv.APIAddr()+"/api/v1/namespaces/default/pods?watch=true&labelSelector=app%3Dx&resourceVersion=12", nil)
	resp, err := h.httpClient(t).Do(req)
	must(t, err)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("offline watch: %s", resp.Status)
	}
	body := make(chan string, 1)
	go func() {
		b, _ := io.ReadAll(resp.Body)
		body <- string(b)
	}()
	select {
	case b := <-body:
		t.Fatalf("offline watch ended while still offline, body %q", b)
	default:
	}
	l.restore()
	h.waitOnline(t, true)
	select {
	case b := <-body:
		if b != "" {
			t.Fatalf("held watch carried %q, want no invented events", b)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("held watch did not end within 10s of the link coming back")
	}
}

// httpClient talks to edgehub as the node over raw HTTP.
func (h *hub) httpClient(t testing.TB) *http.Client {
	cert, key := splitPEM(h.nodePEM)
	cfg := h.restConfig(t, cert, key, "")
	tr, err := restTransport(cfg)
	must(t, err)
	return &http.Client{Transport: tr}
}

var _ kubernetes.Interface = (*kubernetes.Clientset)(nil)

// TestLocalFaceSpeaksHTTP1: a client-go transport offers HTTP/2 and is
// answered over HTTP/1.1, which costs a GET through edgehub about 0.25 ms
// less (see http1Only).
func TestLocalFaceSpeaksHTTP1(t *testing.T) {
	ca := newTestCA(t)
	f := newFakeAPIServer(t, ca)
	f.addPod(pod("default", "web-1", "edge-1", nil, corev1.PodRunning))
	h := startHub(t, ca, "", f.srv.URL)
	h.waitOnline(t, true)
	resp, err := nodeHTTPClient(t, h, h.localCA(t)).Get("https://" + h.srv.APIAddr() + "/api/v1/namespaces/default/pods/web-1")
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.ProtoMajor != 1 {
		t.Fatalf("answer %s over %s, want 200 over HTTP/1.1", resp.Status, resp.Proto)
	}
}

// Stopping edgehub ends its watches, relayed online or held offline, as
// soon as it no longer listens: the clients see their watch end cleanly,
// and the stop completes well inside its grace period instead of waiting
// it out while nothing listens.
func TestStopEndsWatches(t *testing.T) {
	for _, offline := range []bool{false, true} {
		name := map[bool]string{false: "relayed online", true: "held offline"}[offline]
		t.Run(name, func(t *testing.T) {
			ca := newTestCA(t)
			f := newFakeAPIServer(t, ca)
			l := newLink(t, f.srv.Listener.Addr().String())
			h := startHub(t, ca, "", l.url())
			h.waitOnline(t, true)
			if offline {
				l.cut()
				h.waitOnline(t, false)
			}
			// A watch that would last longer than the grace period.
			cert, key := splitPEM(h.nodePEM)
			cfg := h.restConfig(t, cert, key, "")
			cfg.Timeout = 0
			long := int64(300)
			w, err := h.clientFor(t, cfg).CoreV1().Pods("default").Watch(context.Background(), metav1.ListOptions{TimeoutSeconds: &long})
			must(t, err)
			defer w.Stop()
			waitFor(t, 10*time.Second, "the watch reaching edgehub", func() bool {
				return testutil.ToFloat64(h.srv.Metrics().Requests.WithLabelValues("watch", map[bool]string{false: resultProxied, true: resultWatchHeld}[offline])) == 1
			})
			// The grace period is long; only a watch left open would use it.
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if err := h.srv.Stop(ctx); err != nil || ctx.Err() != nil {
				t.Fatalf("stop with a watch open: %v, grace period %v (the watch held it to the end of its grace period)", err, ctx.Err())
			}
			must(t, h.store.Close())
			h.srv = nil
			select {
			case e, ok := <-w.ResultChan():
				if ok {
					t.Fatalf("watch event %v %#v, want the watch to end", e.Type, e.Object)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("the watch did not end within 10s of edgehub stopping")
			}
		})
	}
}

// A client that connects while edgehub is still starting (opening its
// cache, probing the upstreams) waits in the listen queue and is served
// on that same connection, instead of being refused: edgehub's command
// listens first (ListenFaces) and serves on those listeners.
func TestConnectionMadeBeforeStartIsServed(t *testing.T) {
	ca := newTestCA(t)
	f := newFakeAPIServer(t, ca)
	f.addPod(pod("default", "web-1", "edge-1", nil, corev1.PodRunning))
	var early net.Conn
	h := startHubWith(t, ca, "", testTuning(), func(cfg *Config, srv *Server) {
		api, health, err := ListenFaces(cfg)
		must(t, err)
		srv.UseListeners(api, health)
		if early, err = net.Dial("tcp", api.Addr().String()); err != nil {
			t.Fatalf("connecting while edgehub starts: %v", err)
		}
	}, f.srv.URL)
	cert, key := splitPEM(h.nodePEM)
	cfg := h.restConfig(t, cert, key, "")
	dialed := false
	cfg.Dial = func(context.Context, string, string) (net.Conn, error) {
		if dialed {
			return nil, errors.New("a second connection: the early one was not used")
		}
		dialed = true
		return early, nil
	}
	p, err := h.clientFor(t, cfg).CoreV1().Pods("default").Get(context.Background(), "web-1", metav1.GetOptions{})
	if err != nil || p.Name != "web-1" {
		t.Fatalf("GET on the connection made before Start: %v", err)
	}
}
