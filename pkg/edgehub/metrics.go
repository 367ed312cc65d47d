package edgehub

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Request results counted in edgehub_requests_total.
const (
	resultProxied     = "proxied"      // answered by an upstream
	resultCacheHit    = "cache_hit"    // answered from the cache offline
	resultCacheMiss   = "cache_miss"   // offline and the cache did not know: 503
	resultOffline     = "offline"      // offline and not servable from the cache (writes, anonymous): 503
	resultForbidden   = "forbidden"    // refused by edgehub's identity rules: 403
	resultWatchHeld   = "watch_held"   // offline WATCH kept open without events
	resultUpstreamErr = "upstream_err" // an upstream failed mid-request
)

// Reasons an answer or event was not recorded, counted in
// edgehub_cache_record_dropped_total.
const (
	dropQueueFull = "queue_full" // the recorder's queue was full; the client was not kept waiting
	dropTooLarge  = "too_large"  // the answer exceeded the recording limit (64 MiB)
	dropShutdown  = "shutdown"   // edgehub was stopping
)

// Metrics are edgehub's Prometheus metrics, in their own registry.
type Metrics struct {
	Registry     *prometheus.Registry
	Requests     *prometheus.CounterVec
	Cache        *prometheus.CounterVec
	RecordErrors prometheus.Counter
	// RecordDropped counts answers and watch events relayed but not
	// recorded, by reason; RecordSkipped LIST answers not recorded again
	// because the cache already holds them (same scope, same
	// resourceVersion).
	RecordDropped *prometheus.CounterVec
	RecordSkipped prometheus.Counter
	Online        prometheus.Gauge
	EndpointUp    *prometheus.GaugeVec
	Failovers     prometheus.Counter
	Transitions   *prometheus.CounterVec
}

// NewMetrics registers edgehub's metrics in a fresh registry.
func NewMetrics() *Metrics {
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		Requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "edgehub_requests_total", Help: "API requests by verb and result (proxied, cache_hit, cache_miss, offline, forbidden, watch_held, upstream_err).",
		}, []string{"verb", "result"}),
		Cache: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "edgehub_cache_lookups_total", Help: "Offline cache lookups by verb and result (hit, miss).",
		}, []string{"verb", "result"}),
		RecordErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "edgehub_cache_record_errors_total", Help: "Upstream answers that could not be recorded in the cache.",
		}),
		RecordDropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "edgehub_cache_record_dropped_total", Help: "Upstream answers and watch events relayed but not recorded in the cache, by reason (queue_full, too_large, shutdown).",
		}, []string{"reason"}),
		RecordSkipped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "edgehub_cache_record_skipped_total", Help: "LIST answers not recorded again because the cache already holds that scope at that resourceVersion.",
		}),
		Online: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "edgehub_upstream_online", Help: "1 while an upstream apiserver is reachable, 0 while serving from the cache.",
		}),
		EndpointUp: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "edgehub_upstream_endpoint_up", Help: "1 for each upstream endpoint considered up.",
		}, []string{"endpoint"}),
		Failovers: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "edgehub_upstream_failovers_total", Help: "Switches of the active upstream from one endpoint to another.",
		}),
		Transitions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "edgehub_upstream_transitions_total", Help: "Changes of the upstream state, by the state entered (online, offline).",
		}, []string{"to"}),
	}
	m.Registry.MustRegister(m.Requests, m.Cache, m.RecordErrors, m.RecordDropped, m.RecordSkipped, m.Online, m.EndpointUp, m.Failovers, m.Transitions)
	return m
}

func (m *Metrics) setOnline(online bool) { m.Online.Set(b2f(online)) }

func (m *Metrics) setEndpointUp(ep string, up bool) { m.EndpointUp.WithLabelValues(ep).Set(b2f(up)) }

func (m *Metrics) deleteEndpoint(ep string) { m.EndpointUp.DeleteLabelValues(ep) }

func (m *Metrics) request(verb, result string) { m.Requests.WithLabelValues(verb, result).Inc() }

func (m *Metrics) recordDropped(reason string) { m.RecordDropped.WithLabelValues(reason).Inc() }

func dropReason(r submitResult) string {
	if r == submitClosed {
		return dropShutdown
	}
	return dropQueueFull
}

func (m *Metrics) lookup(verb string, hit bool) {
	r := "miss"
	if hit {
		r = "hit"
	}
	m.Cache.WithLabelValues(verb, r).Inc()
}

// Handler serves /metrics.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{})
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
