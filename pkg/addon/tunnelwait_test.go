package addon

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
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
		case "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations", "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations":
			_, _ = w.Write([]byte(`{"items":[]}`))
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

	before, err := waiter().Before(ctx, m)
	if err != nil || strings.Join(before.AggregatedAPIs, ",") != "metrics.k8s.io/v1beta1" {
		t.Errorf("before: %+v, %v", before, err)
	}
	if err := waiter().Verify(ctx, m, before); err != nil {
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
		before, err := w.Before(ctx, bad)
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Verify(ctx, bad, before); err == nil || !strings.Contains(err.Error(), tc.want) {
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

// webhookStandIn is the part of a master's API server the webhook check
// uses: the webhook configurations, and the service proxy, which answers
// for each backend as answer says (a backend's own answer, or the API
// server's own error).
type webhookStandIn struct {
	validating admissionregistrationv1.ValidatingWebhookConfigurationList
	mutating   admissionregistrationv1.MutatingWebhookConfigurationList
	mu         sync.Mutex
	answer     map[string]func(w http.ResponseWriter) // by service proxy path
	asked      []string
}

func (s *webhookStandIn) set(path string, f func(w http.ResponseWriter)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.answer[path] = f
}

func (s *webhookStandIn) serve(w http.ResponseWriter, r *http.Request) bool {
	switch r.URL.Path {
	case "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations":
		_ = json.NewEncoder(w).Encode(s.validating)
		return true
	case "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations":
		_ = json.NewEncoder(w).Encode(s.mutating)
		return true
	}
	if !strings.Contains(r.URL.Path, "/services/") {
		return false
	}
	s.mu.Lock()
	s.asked = append(s.asked, r.URL.Path)
	f := s.answer[r.URL.Path]
	s.mu.Unlock()
	if f == nil {
		http.NotFound(w, r)
		return true
	}
	f(w)
	return true
}

// apiServerStatus writes a Status as the API server's error responder
// does (responsewriters.ErrorNegotiated).
func apiServerStatus(err *apierrors.StatusError) func(w http.ResponseWriter) {
	return func(w http.ResponseWriter) {
		st := err.Status()
		st.Kind, st.APIVersion = "Status", "v1"
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(int(st.Code))
		_ = json.NewEncoder(w).Encode(st)
	}
}

var (
	// What k8s.io/apimachinery pkg/util/proxy/transport.go answers when the
	// dial fails (here: the tunnel's).
	dialError = apiServerStatus(apierrors.NewServiceUnavailable("error trying to reach service: dial tcp 10.244.1.7:8443: connect: connection refused"))
	// What the service registry answers for a Service without endpoints.
	noEndpointsError = apiServerStatus(apierrors.NewServiceUnavailable(`no endpoints available for service "empty"`))
	// A webhook server's answer to a GET: 405, as text.
	methodNotAllowed = func(w http.ResponseWriter) {
		http.Error(w, "method not allowed, POST an AdmissionReview", http.StatusMethodNotAllowed)
	}
)

func serviceWebhook(name, ns, svc string, port *int32, path *string) admissionregistrationv1.ValidatingWebhook {
	return admissionregistrationv1.ValidatingWebhook{Name: name, ClientConfig: admissionregistrationv1.WebhookClientConfig{
		Service: &admissionregistrationv1.ServiceReference{Namespace: ns, Name: svc, Port: port, Path: path}}}
}

func ptr[T any](v T) *T { return &v }

func webhookWaiter(t *testing.T, hooks *webhookStandIn) (ClusterWaiter, MasterInfo) {
	t.Helper()
	s := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/api/v1/nodes/cp1/proxy/healthz":
			_, _ = w.Write([]byte("ok"))
		case r.URL.Path == "/apis/apiregistration.k8s.io/v1/apiservices":
			_, _ = w.Write([]byte(`{"items":[]}`))
		case hooks.serve(w, r):
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(s.Close)
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.Certificate().Raw})
	cfg := &rest.Config{Host: "https://192.0.2.1:6443", TLSClientConfig: rest.TLSClientConfig{CAData: ca}}
	w := ClusterWaiter{Client: fake.NewClientset(), RESTConfig: cfg, Paths: tunnel.DefaultPaths(), Timeout: 300 * time.Millisecond, Interval: 10 * time.Millisecond}
	return w, MasterInfo{Node: "cp1", Endpoint: strings.TrimPrefix(s.URL, "https://")}
}

const (
	policyProxy = "/api/v1/namespaces/ns1/services/https:pol:8443/proxy/validate"
	injectProxy = "/api/v1/namespaces/ns2/services/https:inj:443/proxy/"
	downProxy   = "/api/v1/namespaces/ns3/services/https:down:443/proxy/v"
	emptyProxy  = "/api/v1/namespaces/ns4/services/https:empty:443/proxy/"
)

func webhooksOfACluster() *webhookStandIn {
	h := &webhookStandIn{answer: map[string]func(http.ResponseWriter){
		policyProxy: methodNotAllowed,
		// Any answer of the backend counts, even a 400 in JSON.
		injectProxy: func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusBadRequest)
			_, _ = w.Write([]byte(`{"response":{"allowed":false}}`))
		},
		downProxy:  dialError,
		emptyProxy: noEndpointsError,
	}}
	mk := func(name string, hooks ...admissionregistrationv1.ValidatingWebhook) admissionregistrationv1.ValidatingWebhookConfiguration {
		return admissionregistrationv1.ValidatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: name}, Webhooks: hooks}
	}
	h.validating.Items = []admissionregistrationv1.ValidatingWebhookConfiguration{
		// Two webhooks on one backend: asked once.
		mk("policy", serviceWebhook("a.policy", "ns1", "pol", ptr(int32(8443)), ptr("/validate")),
			serviceWebhook("b.policy", "ns1", "pol", ptr(int32(8443)), ptr("/validate"))),
		mk("down", serviceWebhook("d.down", "ns3", "down", nil, ptr("/v"))),
		mk("empty", serviceWebhook("e.empty", "ns4", "empty", nil, nil)),
		mk("external", admissionregistrationv1.ValidatingWebhook{Name: "x.external",
			ClientConfig: admissionregistrationv1.WebhookClientConfig{URL: ptr("https://hooks.example/x")}}),
	}
	inj := serviceWebhook("m.inject", "ns2", "inj", nil, nil)
	h.mutating.Items = []admissionregistrationv1.MutatingWebhookConfiguration{{ObjectMeta: metav1.ObjectMeta{Name: "inject"},
		Webhooks: []admissionregistrationv1.MutatingWebhook{{Name: inj.Name, ClientConfig: inj.ClientConfig}}}}
	return h
}

// TestClusterWaiterWebhooks: the webhook servers that answered through the
// service proxy before the change must answer after it; the others are
// named in notes and not required.
func TestClusterWaiterWebhooks(t *testing.T) {
	hooks := webhooksOfACluster()
	w, m := webhookWaiter(t, hooks)
	ctx := context.Background()

	before, err := w.Before(ctx, m)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, b := range before.Webhooks {
		got = append(got, b.proxyPath()+" "+strings.Join(b.Webhooks, ","))
	}
	want := []string{policyProxy + " validating policy/a.policy,validating policy/b.policy", injectProxy + " mutating inject/m.inject"}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("answered before:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if n := strings.Count(strings.Join(hooks.asked, ","), policyProxy); n != 1 {
		t.Errorf("the shared backend was asked %d times", n)
	}
	notes := strings.Join(before.Notes, "\n")
	for _, s := range []string{
		"1 webhook(s) with a url: not checked",
		"validating down/d.down (service ns3/down port 443 path /v): not checked, it did not answer before the change either (the API server answered 503: error trying to reach service",
		"validating empty/e.empty (service ns4/empty port 443 path /): not checked, the service has no endpoints",
	} {
		if !strings.Contains(notes, s) {
			t.Errorf("notes lack %q:\n%s", s, notes)
		}
	}

	// After the change: the backend that was down before still is, and is
	// not required; those that answered do.
	if err := w.Verify(ctx, m, before); err != nil {
		t.Errorf("every backend that answered before answers: %v", err)
	}
	// The tunnel cannot dial the policy server: the API server's own 503.
	hooks.set(policyProxy, dialError)
	err = w.Verify(ctx, m, before)
	for _, s := range []string{"webhook validating policy/a.policy (and 1 more on the same backend) (service ns1/pol port 8443 path /validate)",
		"through the service proxy of the API server at " + m.Endpoint, "it answered before the change", "error trying to reach service"} {
		if err == nil || !strings.Contains(err.Error(), s) {
			t.Errorf("dial error after the change: want %q in %v", s, err)
		}
	}
	// A backend answering 503 itself (not a Status of the API server's)
	// has answered.
	hooks.set(policyProxy, func(w http.ResponseWriter) { http.Error(w, "overloaded", http.StatusServiceUnavailable) })
	if err := w.Verify(ctx, m, before); err != nil {
		t.Errorf("the backend's own 503: %v", err)
	}
	// Service gone: the API server's NotFound for the service is not an
	// answer of the backend.
	hooks.set(policyProxy, apiServerStatus(apierrors.NewNotFound(schema.GroupResource{Resource: "services"}, "pol")))
	if err := w.Verify(ctx, m, before); err == nil || !strings.Contains(err.Error(), `services \"pol\" not found`) && !strings.Contains(err.Error(), `services "pol" not found`) {
		t.Errorf("service not found: %v", err)
	}
}

// TestClusterWaiterNoServiceWebhooks: only url webhooks, or none: nothing
// is asked through the service proxy.
func TestClusterWaiterNoServiceWebhooks(t *testing.T) {
	for name, hooks := range map[string]*webhookStandIn{
		"none": {answer: map[string]func(http.ResponseWriter){}},
		"url only": {answer: map[string]func(http.ResponseWriter){}, validating: admissionregistrationv1.ValidatingWebhookConfigurationList{
			Items: []admissionregistrationv1.ValidatingWebhookConfiguration{{ObjectMeta: metav1.ObjectMeta{Name: "external"},
				Webhooks: []admissionregistrationv1.ValidatingWebhook{{Name: "x.external",
					ClientConfig: admissionregistrationv1.WebhookClientConfig{URL: ptr("https://hooks.example/x")}}}}}}},
	} {
		t.Run(name, func(t *testing.T) {
			w, m := webhookWaiter(t, hooks)
			before, err := w.Before(context.Background(), m)
			if err != nil {
				t.Fatal(err)
			}
			if len(before.Webhooks) != 0 {
				t.Errorf("webhooks to check: %+v", before.Webhooks)
			}
			if err := w.Verify(context.Background(), m, before); err != nil {
				t.Error(err)
			}
			if len(hooks.asked) != 0 {
				t.Errorf("asked through the service proxy: %v", hooks.asked)
			}
		})
	}
}

// standInMaster is cp1 for the tunnel step: fakeWaiter stands for the
// kubelet, the TLS stand-in for what answers through cp1's API server.
type standInMaster struct {
	*fakeWaiter
	cluster  ClusterWaiter
	endpoint string // the stand-in's, for cp1's
}

func (w standInMaster) Before(ctx context.Context, m MasterInfo) (Reachable, error) {
	w.calls = append(w.calls, "before "+m.Node)
	m.Endpoint = w.endpoint
	return w.cluster.Before(ctx, m)
}

func (w standInMaster) Verify(ctx context.Context, m MasterInfo, before Reachable) error {
	w.calls = append(w.calls, "verify "+m.Node)
	m.Endpoint = w.endpoint
	return w.cluster.Verify(ctx, m, before)
}

// TestTunnelWebhookCheck: addon rolls back when a webhook server that
// answered through the API server before the change is not reached after
// it, and keeps the change when the only one not reached was down before.
func TestTunnelWebhookCheck(t *testing.T) {
	for _, tc := range []struct {
		name          string
		downBefore    bool
		wantRollBack  bool
		wantInOutput  []string
		wantInMessage []string
	}{
		{name: "answered before, not after", wantRollBack: true,
			wantInOutput: []string{"FAILED on cp1", "rolling back"},
			wantInMessage: []string{"did not work with the tunnel", "webhook validating policy/a.policy", "service ns1/pol port 8443",
				"it answered before the change", "error trying to reach service", "rolled back", "--tunnel=false"}},
		{name: "down before and after", downBefore: true,
			wantInOutput: []string{"validating policy/a.policy (and 1 more on the same backend) (service ns1/pol port 8443 path /validate): not checked, it did not answer before the change either",
				"node proxy, 0 aggregated API(s) and 1 webhook server(s) answer"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newTunnelHost(t)
			p := h.paths
			hooks := webhooksOfACluster()
			if tc.downBefore {
				hooks.set(policyProxy, dialError)
			}
			// The API server restarted with the egress selector cannot
			// reach the policy server through the tunnel.
			h.waiter.checkManifest = func(configured bool) {
				if configured {
					hooks.set(policyProxy, dialError)
				}
			}
			cluster, m := webhookWaiter(t, hooks)
			h.otherWaiter = standInMaster{fakeWaiter: h.waiter, cluster: cluster, endpoint: m.Endpoint}
			h.progress = &bytes.Buffer{}
			_, err := h.run(t)
			out := h.progress.String()
			if tc.wantRollBack != (err != nil) {
				t.Fatalf("roll back %v, got error %v\n%s", tc.wantRollBack, err, out)
			}
			for _, s := range tc.wantInMessage {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error lacks %q: %v", s, err)
				}
			}
			for _, s := range tc.wantInOutput {
				if !strings.Contains(out, s) {
					t.Errorf("output lacks %q:\n%s", s, out)
				}
			}
			restored := bytes.Equal(h.read(t, p.APIServerManifest()), h.manifest)
			if restored != tc.wantRollBack {
				t.Errorf("manifest is the original: %v, want %v", restored, tc.wantRollBack)
			}
		})
	}
}
