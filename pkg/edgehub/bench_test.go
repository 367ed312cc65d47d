package edgehub

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sort"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/rest"
	"k8s.io/klog/v2"

	"github.com/edgeadm/edgeadm/pkg/edgehub/cache"
)

// Latency of GET and LIST through edgehub (online) against the same
// requests sent straight to the upstream, and of an offline LIST of 5,000
// pods. Run:
//
//	go test -run '^$' -bench . -benchtime 2000x ./pkg/edgehub/
//
// p50/p99 are reported per sub-benchmark in microseconds.

func benchLatency(b *testing.B, client *http.Client, url string) {
	b.Helper()
	d := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		resp, err := client.Get(url)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			b.Fatalf("%s: %s", url, resp.Status)
		}
		d = append(d, time.Since(start))
	}
	b.StopTimer()
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	b.ReportMetric(float64(d[len(d)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(d[len(d)*99/100].Microseconds()), "p99-µs")
}

// nodeHTTPClient is a client with the node's certificate trusting ca (for
// the upstream) or edgehub's local CA.
func nodeHTTPClient(b testing.TB, h *hub, caPEM []byte) *http.Client {
	cert, key := splitPEM(h.nodePEM)
	tr, err := rest.TransportFor(&rest.Config{TLSClientConfig: rest.TLSClientConfig{CAData: caPEM, CertData: cert, KeyData: key}})
	if err != nil {
		b.Fatal(err)
	}
	return &http.Client{Transport: tr}
}

func BenchmarkOnline(b *testing.B) {
	ca := newTestCA(b)
	f := newFakeAPIServer(b, ca)
	for i := 0; i < 500; i++ {
		f.addPod(pod("default", fmt.Sprintf("p-%04d", i), "edge-1", map[string]string{"app": fmt.Sprint("a", i%10)}, corev1.PodRunning))
	}
	h := startHub(b, ca, "", f.srv.URL)
	h.waitOnline(b, true)
	direct := nodeHTTPClient(b, h, ca.pem)
	via := nodeHTTPClient(b, h, h.localCA(b))
	for _, r := range []struct{ name, path string }{
		{"GET", "/api/v1/namespaces/default/pods/p-0001"},
		{"LIST-50", "/api/v1/pods?labelSelector=app%3Da1"},
		{"LIST-500", "/api/v1/pods?fieldSelector=spec.nodeName%3Dedge-1"},
	} {
		b.Run(r.name+"/direct", func(b *testing.B) { benchLatency(b, direct, f.srv.URL+r.path) })
		b.Run(r.name+"/edgehub", func(b *testing.B) { benchLatency(b, via, "https://"+h.srv.APIAddr()+r.path) })
	}
}

// The same LIST of 500 pods where every answer carries a new
// resourceVersion, as on a busy cluster: edgehub cannot skip recording
// it, so this measures what recording in the background costs the client.
func BenchmarkOnlineListNewRV(b *testing.B) {
	ca := newTestCA(b)
	items := make([]corev1.Pod, 500)
	for i := range items {
		items[i] = *pod("default", fmt.Sprintf("p-%04d", i), "edge-1", map[string]string{"app": fmt.Sprint("a", i%10)}, corev1.PodRunning)
		items[i].ResourceVersion = fmt.Sprint(i + 1)
	}
	itemsJSON, err := json.Marshal(items)
	must(b, err)
	var rv atomic.Int64
	up := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/readyz" {
			fmt.Fprint(w, "ok")
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"kind":"PodList","apiVersion":"v1","metadata":{"resourceVersion":"%d"},"items":`, 1000+rv.Add(1))
		_, _ = w.Write(itemsJSON)
		fmt.Fprint(w, "}")
	}))
	certPEM, keyPEM := ca.issue(b, "kube-apiserver", nil, net.ParseIP("127.0.0.1"))
	up.TLS = tlsServerConfig(b, ca, certPEM, keyPEM)
	up.StartTLS()
	b.Cleanup(up.Close)
	h := startHub(b, ca, "", up.URL)
	h.waitOnline(b, true)
	path := "/api/v1/pods?fieldSelector=spec.nodeName%3Dedge-1"
	b.Run("direct", func(b *testing.B) { benchLatency(b, nodeHTTPClient(b, h, ca.pem), up.URL+path) })
	b.Run("edgehub", func(b *testing.B) {
		benchLatency(b, nodeHTTPClient(b, h, h.localCA(b)), "https://"+h.srv.APIAddr()+path)
		h.waitRecorded(b)
		m := h.srv.Metrics()
		b.ReportMetric(testutil.ToFloat64(m.RecordSkipped), "skipped")
		b.ReportMetric(testutil.ToFloat64(m.RecordDropped.WithLabelValues(dropQueueFull)), "dropped")
	})
}

// An offline LIST of 5,000 pods (the node's own, by spec.nodeName) from
// the cache, through edgehub's TLS face, as the kubelet would ask.
func BenchmarkOfflineList5000(b *testing.B) {
	ca := newTestCA(b)
	f := newFakeAPIServer(b, ca)
	l := newLink(&testing.T{}, f.srv.Listener.Addr().String())
	defer l.ln.Close()
	h := startHub(b, ca, "", l.url())
	gvr := schema.GroupVersionResource{Version: "v1", Resource: "pods"}
	items := make([][]byte, 5000)
	for i := range items {
		p := pod(fmt.Sprintf("ns-%d", i%20), fmt.Sprintf("p-%05d", i), "edge-1", map[string]string{"app": fmt.Sprint("a", i%10)}, corev1.PodRunning)
		p.ResourceVersion = fmt.Sprint(1000 + i)
		items[i], _ = json.Marshal(p)
	}
	scope := cache.Scope{GVR: gvr, FieldSelector: "spec.nodeName=edge-1"}
	if err := h.store.ReplaceList("node", scope, "PodList", "v1", "7000", items); err != nil {
		b.Fatal(err)
	}
	l.cut()
	h.waitOnline(b, false)
	via := nodeHTTPClient(b, h, h.localCA(b))
	url := "https://" + h.srv.APIAddr() + "/api/v1/pods?fieldSelector=spec.nodeName%3Dedge-1"
	b.Run("all", func(b *testing.B) { benchLatency(b, via, url) })
	b.Run("label-a1", func(b *testing.B) { benchLatency(b, via, url+"&labelSelector=app%3Da1") })
}

var (
	_ = context.Background
	_ = metav1.ListOptions{}
	_ = tls.VersionTLS12
)

// What recording a LIST of 500 pods costs the recorder before the store:
// cutting the items out of the answer against decoding them with
// encoding/json, and the whole recording into a store.
//
//	go test -run '^$' -bench RecordList500 ./pkg/edgehub/
func BenchmarkRecordList500(b *testing.B) {
	list := corev1.PodList{TypeMeta: metav1.TypeMeta{Kind: "PodList", APIVersion: "v1"}, ListMeta: metav1.ListMeta{ResourceVersion: "900"}}
	for i := 0; i < 500; i++ {
		p := pod(fmt.Sprintf("ns-%d", i%5), fmt.Sprintf("p-%04d", i), "edge-1", map[string]string{"app": fmt.Sprint("a", i%10)}, corev1.PodRunning)
		p.ResourceVersion = fmt.Sprint(i + 1)
		list.Items = append(list.Items, *p)
	}
	body, err := json.Marshal(list)
	must(b, err)
	b.Run("cut", func(b *testing.B) {
		b.SetBytes(int64(len(body)))
		for i := 0; i < b.N; i++ {
			head, at, err := readListHeadAt(body)
			if err != nil {
				b.Fatal(err)
			}
			if _, items, err := listItems(body, head, at); err != nil || len(items) != 500 {
				b.Fatal(len(items), err)
			}
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		b.SetBytes(int64(len(body)))
		for i := 0; i < b.N; i++ {
			var l listBody
			if err := json.Unmarshal(body, &l); err != nil || len(l.Items) != 500 {
				b.Fatal(len(l.Items), err)
			}
		}
	})
	b.Run("record", func(b *testing.B) {
		store, err := cache.Open(filepath.Join(b.TempDir(), "cache"), cache.Options{})
		must(b, err)
		defer store.Close()
		h := &Handler{Store: store, Metrics: NewMetrics(), Log: klog.Background()}
		a := apiRequest{kind: kindList, gvr: schema.GroupVersionResource{Version: "v1", Resource: "pods"}}
		a.scope = cache.Scope{GVR: a.gvr}
		b.SetBytes(int64(len(body)))
		for i := 0; i < b.N; i++ {
			// A new resourceVersion each time, so nothing is skipped.
			rv := []byte(fmt.Sprintf(`"resourceVersion":"%d"`, 1000+i))
			bi := bytes.Replace(body, []byte(`"resourceVersion":"900"`), rv, 1)
			h.record(caller{cacheKey: "node"}, a, http.StatusOK, bi, "")
		}
		if n := testutil.ToFloat64(h.Metrics.RecordErrors); n != 0 {
			b.Fatalf("%v record errors", n)
		}
	})
}
