package addon

import (
	"context"
	"encoding/pem"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/rest"

	"github.com/edgeadm/edgeadm/pkg/tunnel"
)

// apiServer answers /readyz and the node proxy of cp1 on 127.0.0.1, as a
// master's API server does at its advertised endpoint.
func apiServer(t *testing.T, proxyStatus, aggregatedStatus int) (*httptest.Server, *rest.Config) {
	t.Helper()
	s := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/readyz":
			_, _ = w.Write([]byte("ok"))
		case "/api/v1/nodes/cp1/proxy/healthz":
			w.WriteHeader(proxyStatus)
			_, _ = w.Write([]byte("ok"))
		case "/apis/apiregistration.k8s.io/v1/apiservices":
			// A local API (no service), an available aggregated one, and one
			// that was not available before (not checked).
			_, _ = w.Write([]byte(`{"items":[
				{"spec":{"group":"apps","version":"v1"},"status":{"conditions":[{"type":"Available","status":"True"}]}},
				{"spec":{"service":{"namespace":"kube-system","name":"metrics-server"},"group":"metrics.k8s.io","version":"v1beta1"},"status":{"conditions":[{"type":"Available","status":"True"}]}},
				{"spec":{"service":{"namespace":"x","name":"y"},"group":"broken.example","version":"v1"},"status":{"conditions":[{"type":"Available","status":"False"}]}}]}`))
		case "/apis/metrics.k8s.io/v1beta1":
			w.WriteHeader(aggregatedStatus)
			_, _ = w.Write([]byte(`{}`))
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(s.Close)
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.Certificate().Raw})
	// The kubeconfig's server is elsewhere (a load balancer): the waiter
	// must ask the master's own endpoint.
	return s, &rest.Config{Host: "https://192.0.2.1:6443", TLSClientConfig: rest.TLSClientConfig{CAData: ca}}
}

func mirrorPod(name string, ready bool, command ...string) *corev1.Pod {
	st := corev1.ConditionFalse
	if ready {
		st = corev1.ConditionTrue
	}
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "kube-system"},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "kube-apiserver", Command: command}}},
		Status:     corev1.PodStatus{Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: st}}},
	}
}

func TestClusterWaiter(t *testing.T) {
	p := tunnel.DefaultPaths()
	flag := "--" + tunnel.EgressFlag + "=" + p.EgressConfig
	s, cfg := apiServer(t, http.StatusOK, http.StatusOK)
	m := MasterInfo{Node: "cp1", Endpoint: strings.TrimPrefix(s.URL, "https://"), APIServerPod: "kube-apiserver-cp1"}
	waiter := func(pods ...*corev1.Pod) ClusterWaiter {
		c := fake.NewClientset()
		for _, p := range pods {
			_ = c.Tracker().Add(p)
		}
		return ClusterWaiter{Client: c, RESTConfig: cfg, Paths: p, Timeout: 300 * time.Millisecond, Interval: 10 * time.Millisecond}
	}
	ctx := context.Background()

	configured := mirrorPod("kube-apiserver-cp1", true, "kube-apiserver", flag)
	if err := waiter(configured).APIServerReady(ctx, m, true); err != nil {
		t.Errorf("configured and ready: %v", err)
	}
	// The kubelet still runs the old manifest: not done.
	err := waiter(mirrorPod("kube-apiserver-cp1", true, "kube-apiserver")).APIServerReady(ctx, m, true)
	if err == nil || !strings.Contains(err.Error(), "kube-system/kube-apiserver-cp1 running with "+flag) {
		t.Errorf("old manifest: %v", err)
	}
	if err := waiter(mirrorPod("kube-apiserver-cp1", true, "kube-apiserver")).APIServerReady(ctx, m, false); err != nil {
		t.Errorf("restored and ready: %v", err)
	}
	if err := waiter(mirrorPod("kube-apiserver-cp1", false, "kube-apiserver", flag)).APIServerReady(ctx, m, true); err == nil {
		t.Error("a pod that is not Ready was taken as ready")
	}
	if err := waiter().APIServerReady(ctx, m, true); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Errorf("no pod: %v", err)
	}

	if err := waiter(mirrorPod("konnectivity-server-cp1", true)).ProxyServerReady(ctx, m); err != nil {
		t.Errorf("proxy server ready: %v", err)
	}
	notReady := mirrorPod("konnectivity-server-cp1", false)
	notReady.Status.Phase = corev1.PodRunning
	notReady.Status.Conditions[0].Message = "containers with unready status: [konnectivity-server]"
	// The timeout names the state the kubelet reports, not only the wait.
	if err := waiter(notReady).ProxyServerReady(ctx, m); err == nil || !strings.Contains(err.Error(), "an agent connected") ||
		!strings.Contains(err.Error(), "not Ready (Running, containers with unready status: [konnectivity-server])") {
		t.Errorf("proxy server not ready: %v", err)
	}

	if err := waiter().Verify(ctx, m); err != nil {
		t.Errorf("node proxy answers: %v", err)
	}
	for _, tc := range []struct {
		proxy, aggregated int
		want              string
	}{
		{http.StatusServiceUnavailable, http.StatusOK, "node proxy /api/v1/nodes/cp1/proxy/healthz"},
		{http.StatusOK, http.StatusServiceUnavailable, "the aggregated API /apis/metrics.k8s.io/v1beta1"},
	} {
		s, cfg := apiServer(t, tc.proxy, tc.aggregated)
		w := waiter()
		w.RESTConfig = cfg
		bad := MasterInfo{Node: "cp1", Endpoint: strings.TrimPrefix(s.URL, "https://")}
		if err := w.Verify(ctx, bad); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("want a failure naming %q, got %v", tc.want, err)
		}
	}
}

// TestPollKeepsTheCauseOverTheDeadline: an error the deadline itself causes
// (client-go's rate limiter refusing to wait past it) does not replace the
// earlier error that says why the wait failed.
func TestPollKeepsTheCauseOverTheDeadline(t *testing.T) {
	w := ClusterWaiter{Timeout: 200 * time.Millisecond, Interval: 10 * time.Millisecond}
	n := 0
	err := w.poll(context.Background(), "the thing", func(ctx context.Context) (bool, error) {
		n++
		if n == 1 {
			return false, errors.New("the pod is not Ready (Running)")
		}
		return false, errors.New("client rate limiter Wait returned an error: rate: Wait(n=1) would exceed context deadline")
	})
	if err == nil || !strings.Contains(err.Error(), "the pod is not Ready (Running)") || strings.Contains(err.Error(), "rate limiter") {
		t.Errorf("poll: %v", err)
	}
}
