package addon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/edgeadm/edgeadm/pkg/tunnel"
)

// ClusterWaiter is the MasterWaiter of a real cluster: it reads the
// masters' mirror pods (the kubelet reports there what it runs from the
// manifests) and asks each master's own API server, at the endpoint kubeadm
// advertises for it, for /readyz and a node proxy.
type ClusterWaiter struct {
	Client     kubernetes.Interface
	RESTConfig *rest.Config
	Paths      tunnel.Paths
	// Timeout bounds each wait (default 3 minutes: an API server restart
	// takes about a minute); Interval is the poll period (default 1 s).
	Timeout, Interval time.Duration
}

func (w ClusterWaiter) poll(ctx context.Context, what string, cond func(context.Context) (bool, error)) error {
	timeout, interval := w.Timeout, w.Interval
	if timeout <= 0 {
		timeout = 3 * time.Minute
	}
	if interval <= 0 {
		interval = time.Second
	}
	var last error
	err := wait.PollUntilContextTimeout(ctx, interval, timeout, true, func(ctx context.Context) (bool, error) {
		ok, err := cond(ctx)
		if err != nil {
			// The API server restarts under us: keep asking until the bound.
			// An error the bound itself caused (the client's rate limiter
			// refusing to wait past the deadline) would hide the one that
			// says why: keep the earlier one.
			if last == nil || !deadlineError(ctx, err) {
				last = err
			}
			return false, nil
		}
		return ok, nil
	})
	if err != nil {
		if last != nil {
			return fmt.Errorf("%s: not after %s (last error: %v)", what, timeout, last)
		}
		return fmt.Errorf("%s: not after %s", what, timeout)
	}
	return nil
}

// deadlineError reports whether err comes from ctx's deadline rather than
// from what was asked.
func deadlineError(ctx context.Context, err error) bool {
	return ctx.Err() != nil || errors.Is(err, context.DeadlineExceeded) || strings.Contains(err.Error(), "would exceed context deadline")
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// ProxyServerReady implements MasterWaiter.
func (w ClusterWaiter) ProxyServerReady(ctx context.Context, m MasterInfo) error {
	return w.poll(ctx, fmt.Sprintf("the proxy server pod kube-system/%s Ready (an agent connected)", m.ProxyServerPod()), func(ctx context.Context) (bool, error) {
		p, err := w.Client.CoreV1().Pods(metav1.NamespaceSystem).Get(ctx, m.ProxyServerPod(), metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		if podReady(p) {
			return true, nil
		}
		// Say what the kubelet reports, so a timeout names the state.
		why := string(p.Status.Phase)
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodReady && c.Message != "" {
				why += ", " + c.Message
			}
		}
		return false, fmt.Errorf("the pod is not Ready (%s); its readiness is the server's /readyz, true once an agent is connected", why)
	})
}

// APIServerReady implements MasterWaiter.
func (w ClusterWaiter) APIServerReady(ctx context.Context, m MasterInfo, configured bool) error {
	state := "without"
	if configured {
		state = "with"
	}
	flag := "--" + tunnel.EgressFlag + "=" + w.Paths.EgressConfig
	err := w.poll(ctx, fmt.Sprintf("the API server pod kube-system/%s running %s %s and Ready", m.APIServerPod, state, flag), func(ctx context.Context) (bool, error) {
		p, err := w.Client.CoreV1().Pods(metav1.NamespaceSystem).Get(ctx, m.APIServerPod, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		has := false
		for _, c := range p.Spec.Containers {
			if c.Name == tunnel.APIServerContainer {
				for _, a := range c.Command {
					has = has || a == flag
				}
			}
		}
		return has == configured && podReady(p), nil
	})
	if err != nil {
		return err
	}
	direct, err := w.direct(m)
	if err != nil {
		return err
	}
	return w.poll(ctx, fmt.Sprintf("/readyz of the API server at %s", m.Endpoint), func(ctx context.Context) (bool, error) {
		b, err := direct.Get().AbsPath("/readyz").DoRaw(ctx)
		return err == nil && strings.TrimSpace(string(b)) == "ok", err
	})
}

// Before implements MasterWaiter: what answers through m's API server
// before the change. Every aggregated API backed by a Service and
// Available (metrics-server, ...), and every webhook backed by a Service
// whose server answers a GET through the API server's service proxy
// (askBackend). Webhooks with a url, and Services without endpoints, are
// not checked: the notes say so.
func (w ClusterWaiter) Before(ctx context.Context, m MasterInfo) (Reachable, error) {
	direct, err := w.direct(m)
	if err != nil {
		return Reachable{}, err
	}
	apis, err := availableAggregatedAPIs(ctx, direct)
	if err != nil {
		return Reachable{}, err
	}
	api, err := w.directHTTP(m)
	if err != nil {
		return Reachable{}, err
	}
	hooks, notes, err := reachableWebhooks(ctx, direct, api)
	if err != nil {
		return Reachable{}, err
	}
	return Reachable{AggregatedAPIs: apis, Webhooks: hooks, Notes: notes}, nil
}

// Verify implements MasterWaiter: the master's own kubelet through the
// master's API server, which now dials it through the proxy server and the
// cloud agent; then what answered before the change (Before): the
// aggregated APIs and the webhook servers, whose traffic takes the
// "cluster" egress, the cloud agent's default route. A webhook is not
// sent an AdmissionReview (that could have side effects): a GET to its
// path through the service proxy leaves the API server by the same dialer
// a webhook call to the Service takes, and any answer of the webhook
// server proves that path. (The service proxy dials an endpoint, a webhook
// call the Service's cluster IP unless --enable-aggregator-routing: both
// through the cloud agent.)
func (w ClusterWaiter) Verify(ctx context.Context, m MasterInfo, before Reachable) error {
	direct, err := w.direct(m)
	if err != nil {
		return err
	}
	err = w.poll(ctx, fmt.Sprintf("node proxy /api/v1/nodes/%s/proxy/healthz through the API server at %s", m.Node, m.Endpoint), func(ctx context.Context) (bool, error) {
		b, err := direct.Get().AbsPath("/api/v1/nodes", m.Node, "proxy/healthz").DoRaw(ctx)
		return err == nil && strings.TrimSpace(string(b)) == "ok", err
	})
	if err != nil {
		return err
	}
	for _, gv := range before.AggregatedAPIs {
		err := w.poll(ctx, fmt.Sprintf("the aggregated API /apis/%s (served by a Service in the cluster) through the API server at %s", gv, m.Endpoint), func(ctx context.Context) (bool, error) {
			_, err := direct.Get().AbsPath("/apis", gv).DoRaw(ctx)
			return err == nil, err
		})
		if err != nil {
			return err
		}
	}
	if len(before.Webhooks) == 0 {
		return nil
	}
	api, err := w.directHTTP(m)
	if err != nil {
		return err
	}
	for _, b := range before.Webhooks {
		err := w.poll(ctx, fmt.Sprintf("an answer of the server of %s through the service proxy of the API server at %s (it answered before the change)", b, m.Endpoint), func(ctx context.Context) (bool, error) {
			v, why := askBackend(ctx, api, b)
			if v != backendAnswered {
				return false, errors.New(why)
			}
			return true, nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// apiServiceList is the part of apiregistration.k8s.io/v1 APIServiceList
// the check needs.
type apiServiceList struct {
	Items []struct {
		Spec struct {
			Service *struct {
				Namespace string `json:"namespace"`
			} `json:"service"`
			Group   string `json:"group"`
			Version string `json:"version"`
		} `json:"spec"`
		Status struct {
			Conditions []struct {
				Type   string `json:"type"`
				Status string `json:"status"`
			} `json:"conditions"`
		} `json:"status"`
	} `json:"items"`
}

// availableAggregatedAPIs lists group/version of the APIServices backed by
// a Service and Available: those the change must not break.
func availableAggregatedAPIs(ctx context.Context, c rest.Interface) ([]string, error) {
	b, err := c.Get().AbsPath("/apis/apiregistration.k8s.io/v1/apiservices").DoRaw(ctx)
	if err != nil {
		return nil, fmt.Errorf("list the aggregated APIs: %w", err)
	}
	var l apiServiceList
	if err := json.Unmarshal(b, &l); err != nil {
		return nil, fmt.Errorf("list the aggregated APIs: %w", err)
	}
	var out []string
	for _, it := range l.Items {
		if it.Spec.Service == nil {
			continue
		}
		for _, c := range it.Status.Conditions {
			if c.Type == "Available" && c.Status == "True" {
				out = append(out, it.Spec.Group+"/"+it.Spec.Version)
			}
		}
	}
	return out, nil
}

// direct is a client of m's API server itself, not of the kubeconfig's
// server (a load balancer would answer for any master).
func (w ClusterWaiter) direct(m MasterInfo) (rest.Interface, error) {
	if m.Endpoint == "" {
		return nil, fmt.Errorf("master %s advertises no API server endpoint", m.Node)
	}
	cfg := rest.CopyConfig(w.RESTConfig)
	cfg.Host = "https://" + m.Endpoint
	cfg.Timeout = 10 * time.Second
	c, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	return c.Discovery().RESTClient(), nil
}

// directHTTP is a plain HTTP client of m's API server itself.
func (w ClusterWaiter) directHTTP(m MasterInfo) (apiServerHTTP, error) {
	if m.Endpoint == "" {
		return apiServerHTTP{}, fmt.Errorf("master %s advertises no API server endpoint", m.Node)
	}
	cfg := rest.CopyConfig(w.RESTConfig)
	cfg.Host = "https://" + m.Endpoint
	cfg.Timeout = 10 * time.Second
	hc, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return apiServerHTTP{}, err
	}
	return apiServerHTTP{client: hc, base: cfg.Host}, nil
}
