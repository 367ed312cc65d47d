package edgehub

import (
	"context"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/go-logr/logr"
)

// endpoint is one apiserver address and its health as edgehub sees it.
type endpoint struct {
	url       *url.URL
	learned   bool // from the cluster's EndpointSlice, not the configuration
	up        bool
	failures  int // consecutive failures (probes or requests)
	successes int // consecutive probe successes
}

// Balancer knows which upstream apiservers answer and decides whether
// edgehub is online. An endpoint goes down after FailuresToDown consecutive
// failures and comes back after SuccessesToUp consecutive successful probes,
// so a weak link (latency, some loss) does not flap. edgehub is online while
// any endpoint is up. Requests stick to one active endpoint and fail over to
// the next that is up.
type Balancer struct {
	tuning  Tuning
	log     logr.Logger
	metrics *Metrics
	now     func() time.Time

	mu        sync.Mutex
	endpoints []*endpoint
	active    *endpoint
	online    bool
	since     time.Time     // when online last changed
	changed   chan struct{} // closed and replaced at every online/offline change
}

// NewBalancer starts with every endpoint down; Start's first probe round
// decides the initial state without hysteresis.
func NewBalancer(upstreams []*url.URL, tuning Tuning, metrics *Metrics, log logr.Logger) *Balancer {
	b := &Balancer{tuning: tuning, log: log, metrics: metrics, now: time.Now, changed: make(chan struct{})}
	for _, u := range upstreams {
		b.endpoints = append(b.endpoints, &endpoint{url: u})
	}
	b.since = b.now()
	metrics.setOnline(false)
	return b
}

// Online tells whether any upstream is up, and returns a channel closed at
// the next change of that answer.
func (b *Balancer) Online() (bool, <-chan struct{}) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.online, b.changed
}

// Candidates lists the endpoints to try for a request, the active one
// first; empty when offline.
func (b *Balancer) Candidates() []*url.URL {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []*url.URL
	if b.active != nil && b.active.up {
		out = append(out, b.active.url)
	}
	for _, e := range b.endpoints {
		if e.up && e != b.active {
			out = append(out, e.url)
		}
	}
	return out
}

// Active is the endpoint requests go to first, nil when offline.
func (b *Balancer) Active() *url.URL {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.active == nil {
		return nil
	}
	return b.active.url
}

// RequestFailed counts a request that could not reach u (refused, timed
// out): it weighs like a failed probe.
func (b *Balancer) RequestFailed(u *url.URL) { b.report(u, false, false) }

// RequestSucceeded resets u's failure count: an answer arrived.
func (b *Balancer) RequestSucceeded(u *url.URL) { b.report(u, true, false) }

func (b *Balancer) report(u *url.URL, ok, probe bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	e := b.find(u)
	if e == nil {
		return
	}
	if ok {
		e.failures = 0
		if probe {
			e.successes++
		}
		if !e.up && e.successes >= b.tuning.SuccessesToUp {
			e.up = true
			b.log.V(1).Info("upstream endpoint up", "endpoint", e.url.String())
		}
	} else {
		e.successes = 0
		e.failures++
		if e.up && e.failures >= b.tuning.FailuresToDown {
			e.up = false
			b.log.V(1).Info("upstream endpoint down", "endpoint", e.url.String())
		}
	}
	b.updateLocked(false)
}

func (b *Balancer) find(u *url.URL) *endpoint {
	for _, e := range b.endpoints {
		if e.url.String() == u.String() {
			return e
		}
	}
	return nil
}

// updateLocked picks the active endpoint and logs a change of the online
// state once, not per request. The initial decision is no transition.
func (b *Balancer) updateLocked(initial bool) {
	for _, e := range b.endpoints {
		b.metrics.setEndpointUp(e.url.String(), e.up)
	}
	if b.active == nil || !b.active.up {
		var next *endpoint
		for _, e := range b.endpoints {
			if e.up {
				next = e
				break
			}
		}
		if b.active != nil && next != nil && next != b.active {
			b.metrics.Failovers.Inc()
			b.log.Info("edgehub: failing over to another upstream", "from", b.active.url.String(), "to", next.url.String())
		}
		if next != nil {
			b.active = next
		}
	}
	online := b.active != nil && b.active.up
	if online == b.online {
		return
	}
	now := b.now()
	switch {
	case initial:
	case online:
		b.log.Info("edgehub: back online", "upstream", b.active.url.String(), "offlineFor", now.Sub(b.since).Round(time.Millisecond).String())
		b.metrics.Transitions.WithLabelValues("online").Inc()
	default:
		b.log.Info("edgehub: upstream unreachable, serving from cache", "since", now.UTC().Format(time.RFC3339))
		b.metrics.Transitions.WithLabelValues("offline").Inc()
	}
	b.online = online
	b.since = now
	b.metrics.setOnline(online)
	close(b.changed)
	b.changed = make(chan struct{})
}

// SetLearned replaces the learned endpoints with urls (configured ones are
// kept). New ones start down: a probe must answer before requests go there.
func (b *Balancer) SetLearned(urls []*url.URL) {
	b.mu.Lock()
	defer b.mu.Unlock()
	want := map[string]*url.URL{}
	for _, u := range urls {
		want[u.String()] = u
	}
	var kept []*endpoint
	for _, e := range b.endpoints {
		if !e.learned {
			delete(want, e.url.String())
			kept = append(kept, e)
			continue
		}
		if _, ok := want[e.url.String()]; ok {
			delete(want, e.url.String())
			kept = append(kept, e)
		} else {
			b.metrics.deleteEndpoint(e.url.String())
		}
	}
	for _, u := range urls {
		if _, ok := want[u.String()]; ok {
			kept = append(kept, &endpoint{url: u, learned: true})
			b.log.V(1).Info("learned upstream endpoint", "endpoint", u.String())
		}
	}
	b.endpoints = kept
	if b.active != nil && b.find(b.active.url) == nil {
		b.active = nil
	}
	b.updateLocked(false)
}

// Probe is one health check of an upstream: nil when it answered.
type Probe func(ctx context.Context, u *url.URL) error

// Run probes every endpoint every ProbeInterval until ctx ends. The first
// round decides the initial state directly (no hysteresis), so a fresh
// start with the link down serves from the cache at once.
func (b *Balancer) Run(ctx context.Context, probe Probe, firstRound chan<- struct{}) {
	b.probeAll(ctx, probe, true)
	if firstRound != nil {
		close(firstRound)
	}
	t := time.NewTicker(b.tuning.ProbeInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			b.probeAll(ctx, probe, false)
		}
	}
}

func (b *Balancer) probeAll(ctx context.Context, probe Probe, initial bool) {
	b.mu.Lock()
	urls := make([]*url.URL, 0, len(b.endpoints))
	for _, e := range b.endpoints {
		urls = append(urls, e.url)
	}
	b.mu.Unlock()
	var wg sync.WaitGroup
	for _, u := range urls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pctx, cancel := context.WithTimeout(ctx, b.tuning.ProbeTimeout)
			err := probe(pctx, u)
			cancel()
			if ctx.Err() != nil {
				return
			}
			if err != nil {
				b.log.V(2).Info("upstream probe failed", "endpoint", u.String(), "err", err.Error())
			}
			if initial {
				b.setInitial(u, err == nil)
				return
			}
			b.report(u, err == nil, true)
		}()
	}
	wg.Wait()
	if initial {
		b.mu.Lock()
		b.updateLocked(true)
		b.mu.Unlock()
	}
}

func (b *Balancer) setInitial(u *url.URL, ok bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if e := b.find(u); e != nil {
		e.up = ok
		if ok {
			e.successes = b.tuning.SuccessesToUp
		} else {
			e.failures = b.tuning.FailuresToDown
		}
	}
}

// httpProbe asks an upstream's /readyz: any answer but a 5xx means the
// apiserver is reachable and serving (a 401/403 still proves the link).
func httpProbe(client *http.Client) Probe {
	return func(ctx context.Context, u *url.URL) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String()+"/readyz", nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode >= 500 {
			return &probeStatusError{code: resp.StatusCode}
		}
		return nil
	}
}

type probeStatusError struct{ code int }

func (e *probeStatusError) Error() string { return "readyz answered " + http.StatusText(e.code) }
