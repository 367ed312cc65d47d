package addon

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
)

// Reachable is what answered through a master's API server before addon
// changed it. Verify requires exactly these afterwards: something already
// broken must not make addon roll back.
type Reachable struct {
	// AggregatedAPIs are group/version of the APIServices backed by a
	// Service and Available.
	AggregatedAPIs []string `json:"aggregatedAPIs,omitempty"`
	// Webhooks are the webhook servers whose backend answered through the
	// API server's service proxy.
	Webhooks []WebhookBackend `json:"webhooks,omitempty"`
	// Notes say which webhooks are not checked, and why.
	Notes []string `json:"notes,omitempty"`
}

// WebhookBackend is one webhook server as the API server calls it: a
// Service's port and a path. Webhooks sharing all three are one backend.
type WebhookBackend struct {
	Namespace string `json:"namespace"`
	Service   string `json:"service"`
	Port      int32  `json:"port"`
	Path      string `json:"path"`
	// Webhooks it serves, as "validating|mutating <configuration>/<webhook>".
	Webhooks []string `json:"webhooks"`
}

func (b WebhookBackend) key() string {
	return fmt.Sprintf("%s/%s:%d%s", b.Namespace, b.Service, b.Port, b.Path)
}

// proxyPath reaches the backend through the API server's service proxy.
// The request leaves the API server through the egress selector's
// "cluster" dialer, the one webhook calls to a Service take. The path
// always starts with "/": with an empty one the API server answers a
// redirect itself, without asking the backend.
func (b WebhookBackend) proxyPath() string {
	return fmt.Sprintf("/api/v1/namespaces/%s/services/https:%s:%d/proxy%s", b.Namespace, b.Service, b.Port, b.Path)
}

// String names the webhook(s) and the service, for messages.
func (b WebhookBackend) String() string {
	names := "webhook " + b.Webhooks[0]
	if len(b.Webhooks) > 1 {
		names += fmt.Sprintf(" (and %d more on the same backend)", len(b.Webhooks)-1)
	}
	return fmt.Sprintf("%s (service %s/%s port %d path %s)", names, b.Namespace, b.Service, b.Port, b.Path)
}

// webhookBackends lists the Service-backed webhooks of every validating
// and mutating configuration, one entry per service, port and path. A
// webhook with a url is left out: the API server dials a url through the
// "controlplane" egress (k8s.io/apiserver pkg/util/webhook ClientConfigFor),
// which addon's egress configuration leaves direct; only the Service ones
// take the "cluster" egress the change moves to the tunnel.
func webhookBackends(ctx context.Context, c rest.Interface) (backends []WebhookBackend, withURL int, err error) {
	byKey := map[string]int{}
	add := func(kind, config, name string, cc admissionregistrationv1.WebhookClientConfig) {
		if cc.Service == nil {
			withURL++
			return
		}
		b := WebhookBackend{Namespace: cc.Service.Namespace, Service: cc.Service.Name, Port: 443, Path: "/"}
		if cc.Service.Port != nil {
			b.Port = *cc.Service.Port
		}
		if cc.Service.Path != nil && *cc.Service.Path != "" {
			b.Path = *cc.Service.Path
			if !strings.HasPrefix(b.Path, "/") {
				b.Path = "/" + b.Path
			}
		}
		id := kind + " " + config + "/" + name
		if i, ok := byKey[b.key()]; ok {
			backends[i].Webhooks = append(backends[i].Webhooks, id)
			return
		}
		b.Webhooks = []string{id}
		byKey[b.key()] = len(backends)
		backends = append(backends, b)
	}
	var v admissionregistrationv1.ValidatingWebhookConfigurationList
	if err := getJSON(ctx, c, "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations", &v); err != nil {
		return nil, 0, fmt.Errorf("list the validating webhook configurations: %w", err)
	}
	var m admissionregistrationv1.MutatingWebhookConfigurationList
	if err := getJSON(ctx, c, "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations", &m); err != nil {
		return nil, 0, fmt.Errorf("list the mutating webhook configurations: %w", err)
	}
	sort.Slice(v.Items, func(i, j int) bool { return v.Items[i].Name < v.Items[j].Name })
	sort.Slice(m.Items, func(i, j int) bool { return m.Items[i].Name < m.Items[j].Name })
	for _, cfg := range v.Items {
		for _, wh := range cfg.Webhooks {
			add("validating", cfg.Name, wh.Name, wh.ClientConfig)
		}
	}
	for _, cfg := range m.Items {
		for _, wh := range cfg.Webhooks {
			add("mutating", cfg.Name, wh.Name, wh.ClientConfig)
		}
	}
	return backends, withURL, nil
}

func getJSON(ctx context.Context, c rest.Interface, path string, into any) error {
	b, err := c.Get().AbsPath(path).DoRaw(ctx)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, into)
}

// proxyVerdict is what a request through the service proxy shows.
type proxyVerdict int

const (
	// backendAnswered: the webhook server itself answered, whatever its
	// status (a GET to a webhook path usually gets 400 or 405).
	backendAnswered proxyVerdict = iota
	// noEndpoints: the Service has no ready endpoint; the API server did
	// not try.
	noEndpoints
	// notReached: the API server answered itself (could not reach the
	// backend, or refused the request), or did not answer.
	notReached
)

// askBackend sends a GET to the backend through the API server's service
// proxy, and tells the backend's answer from the API server's own.
//
// The API server's own errors are a metav1.Status, written by the proxy's
// error responder: k8s.io/apimachinery pkg/util/proxy/transport.go turns a
// failed dial or round trip (a refused connection, the tunnel's dial
// error, a TLS failure) into 503 reason ServiceUnavailable, "error trying
// to reach service: ..."; k8s.io/kubernetes
// pkg/registry/core/service/storage/storage.go ResourceLocation answers
// 503 ServiceUnavailable "no endpoints available for service ..." (or "no
// service port ... found") before dialling, and NotFound/Forbidden carry
// details.kind "services". A backend's answer is passed through as it is;
// a webhook server does not send a Status with those reasons.
func askBackend(ctx context.Context, api apiServerHTTP, b WebhookBackend) (proxyVerdict, string) {
	// A plain HTTP client, not client-go's REST result: that drops the
	// status code and body of a non-JSON error answer (a backend's 405).
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, api.base+b.proxyPath(), nil)
	if err != nil {
		return notReached, err.Error()
	}
	resp, err := api.client.Do(req)
	if err != nil {
		return notReached, fmt.Sprintf("no answer from the API server: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	code := resp.StatusCode
	var st metav1.Status
	if json.Unmarshal(body, &st) != nil || st.Kind != "Status" || st.APIVersion != "v1" {
		return backendAnswered, fmt.Sprintf("HTTP %d", code)
	}
	switch {
	case code == http.StatusServiceUnavailable && st.Reason == metav1.StatusReasonServiceUnavailable:
		if strings.HasPrefix(st.Message, "no endpoints available for service") {
			return noEndpoints, st.Message
		}
		return notReached, fmt.Sprintf("the API server answered %d: %s", code, st.Message)
	case st.Details != nil && st.Details.Kind == "services" && st.Details.Group == "":
		return notReached, fmt.Sprintf("the API server answered %d: %s", code, st.Message)
	}
	return backendAnswered, "HTTP " + strconv.Itoa(code)
}

// apiServerHTTP is a plain HTTP client of one master's API server.
type apiServerHTTP struct {
	client *http.Client
	base   string
}

// reachableWebhooks asks every Service-backed webhook's backend once,
// before the change, and keeps those that answered.
func reachableWebhooks(ctx context.Context, c rest.Interface, api apiServerHTTP) (answered []WebhookBackend, notes []string, err error) {
	backends, withURL, err := webhookBackends(ctx, c)
	if err != nil {
		return nil, nil, err
	}
	if withURL > 0 {
		notes = append(notes, fmt.Sprintf("%d webhook(s) with a url: not checked, the API server dials a url directly (\"controlplane\" egress), which the change leaves alone", withURL))
	}
	for _, b := range backends {
		switch v, why := askBackend(ctx, api, b); v {
		case backendAnswered:
			answered = append(answered, b)
		case noEndpoints:
			notes = append(notes, fmt.Sprintf("%s: not checked, the service has no endpoints (%s)", b, why))
		default:
			notes = append(notes, fmt.Sprintf("%s: not checked, it did not answer before the change either (%s)", b, why))
		}
	}
	return answered, notes, nil
}
