package edgehub

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/edgeadm/edgeadm/pkg/edgehub/cache"
)

// Handler is edgehub's API face: it forwards every request to an upstream
// apiserver while one answers (recording what the node's clients read) and
// answers from the cache while none does.
type Handler struct {
	NodeName string
	Balancer *Balancer
	Store    cache.Store
	// NodeTransport carries the node's client certificate; PassTransport
	// carries none (callers' tokens travel in their own header).
	NodeTransport http.RoundTripper
	PassTransport http.RoundTripper
	Metrics       *Metrics
	Log           logr.Logger
	// Recorder, when set, records answers off the request path, in the
	// order they passed; nil records inline.
	Recorder *Recorder
	// Tokens, when set, keeps the node's TokenRequest answers for offline.
	Tokens *tokenCache

	// lists lets the recorder skip a LIST answer the cache already holds;
	// pending one a newer answer for the same scope will overwrite.
	lists   listMemo
	pending listQueue
	// maxRecord overrides maxRecordedBody when positive (tests).
	maxRecord atomic.Int64

	// stopping, closed by EndWatches (when set: NewServer makes it),
	// ends every watch at once.
	stopping chan struct{}
	stopOnce sync.Once
}

// EndWatches ends every watch, relayed or held, and any watch that starts
// after it, cleanly (the client sees the stream end and watches again).
// edgehub calls it when it stops, once its faces no longer listen: a
// watch would otherwise hold shutdown for its whole grace period, while
// nothing listens and every request of the node's clients is refused.
func (h *Handler) EndWatches() {
	h.stopOnce.Do(func() {
		if h.stopping != nil {
			close(h.stopping)
		}
	})
}

func (h *Handler) recordLimit() int {
	if n := h.maxRecord.Load(); n > 0 {
		return int(n)
	}
	return maxRecordedBody
}

// hopHeaders are per-connection headers a proxy must not forward.
var hopHeaders = []string{
	"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
	"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade",
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c, err := identify(r, h.NodeName)
	if err != nil {
		h.Metrics.request(strings.ToLower(r.Method), resultForbidden)
		writeStatus(w, http.StatusForbidden, metav1.StatusReasonForbidden, err.Error())
		return
	}
	a := classify(r)
	if c.kind == callerAnonymous {
		// Nothing anonymous is recorded, so nothing anonymous is served
		// from the cache.
		a.kind = kindPass
	}
	if isUpgrade(r) {
		h.proxyUpgrade(w, r, c, a)
		return
	}
	var tokenKeyOf string
	if a.tokenRequest && c.kind == callerNode && h.Tokens != nil {
		body, err := readBody(r)
		if err != nil {
			writeStatus(w, http.StatusRequestEntityTooLarge, metav1.StatusReasonRequestEntityTooLarge, "edgehub: "+err.Error())
			return
		}
		tokenKeyOf = tokenKey(a.info.Namespace, a.info.Name, body)
	}
	online, changed := h.Balancer.Online()
	if tokenKeyOf != "" {
		if online && h.forwardTokenRequest(w, r, c, a, tokenKeyOf, changed) {
			return
		}
		h.serveTokenOffline(w, a, tokenKeyOf)
		return
	}
	if online && h.forward(w, r, c, a, changed) {
		return
	}
	h.serveOffline(w, r, c, a)
}

func (h *Handler) transport(c caller) http.RoundTripper {
	if c.kind == callerNode {
		return h.NodeTransport
	}
	return h.PassTransport
}

// forward tries the upstreams in the balancer's order. It returns false,
// having written nothing, when none could be reached: the caller then
// answers offline.
func (h *Handler) forward(w http.ResponseWriter, r *http.Request, c caller, a apiRequest, changed <-chan struct{}) bool {
	// Going offline cancels requests in flight, so a watch on a dead link
	// ends (the client re-watches and is held) and a read hanging on a
	// silent link is answered from the cache.
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	var stopping <-chan struct{} // nil: never
	if a.kind == kindWatch {
		stopping = h.stopping
	}
	go func() {
		select {
		case <-changed:
			cancel()
		case <-stopping:
			cancel()
		case <-ctx.Done():
		}
	}()

	// Only reads are sent to a second upstream: a write that failed
	// mid-way may have been applied.
	retriable := r.Method == http.MethodGet || r.Method == http.MethodHead
	for _, u := range h.Balancer.Candidates() {
		out := h.outRequest(ctx, r, c, a, u)
		resp, err := h.transport(c).RoundTrip(out)
		if err != nil {
			if r.Context().Err() != nil {
				return true // the client left; nobody to answer
			}
			if ctx.Err() == nil {
				h.Balancer.RequestFailed(u)
			}
			h.Log.V(2).Info("upstream request failed", "endpoint", u.String(), "verb", a.verb, "err", err.Error())
			if retriable && ctx.Err() == nil {
				continue
			}
			return false
		}
		h.Balancer.RequestSucceeded(u)
		if h.respond(ctx, w, r, c, a, resp) {
			return true
		}
		// The body broke off before anything was written: try the next.
		h.Balancer.RequestFailed(u)
		if !retriable || ctx.Err() != nil {
			return false
		}
	}
	return false
}

func (h *Handler) outRequest(ctx context.Context, r *http.Request, c caller, a apiRequest, u *url.URL) *http.Request {
	out := r.Clone(ctx)
	out.URL = &url.URL{Scheme: u.Scheme, Host: u.Host, Path: r.URL.Path, RawPath: r.URL.RawPath, RawQuery: r.URL.RawQuery}
	out.Host = u.Host
	out.RequestURI = ""
	for _, hh := range hopHeaders {
		out.Header.Del(hh)
	}
	if c.kind == callerNode {
		// The node's client certificate is the credential upstream.
		out.Header.Del("Authorization")
	}
	if a.kind != kindPass {
		// JSON, so edgehub can read and record the answer; clients decode
		// by the answer's Content-Type.
		out.Header.Set("Accept", "application/json")
		out.Header.Del("Accept-Encoding")
		if (a.kind == kindGet || a.kind == kindList) && acceptsGzip(r.Header.Get("Accept-Encoding")) {
			// A compressed answer passes through as it comes: nothing to
			// inflate on the client's path and fewer bytes on the second
			// TLS hop; the recorder inflates its copy in the background.
			// Otherwise the transport asks for gzip and inflates for us.
			out.Header.Set("Accept-Encoding", "gzip")
		}
	}
	if r.ContentLength == 0 {
		out.Body = nil
	}
	return out
}

// respond relays an upstream answer, recording what is cacheable. It
// returns false, having written nothing, if the body broke off before its
// first bytes.
func (h *Handler) respond(ctx context.Context, w http.ResponseWriter, r *http.Request, c caller, a apiRequest, resp *http.Response) bool {
	defer resp.Body.Close()
	json := isJSON(resp.Header.Get("Content-Type"))
	switch {
	case a.kind == kindWatch && resp.StatusCode == http.StatusOK && json:
		h.Metrics.request(a.verb, resultProxied)
		copyHeaders(w.Header(), resp.Header)
		w.Header().Del("Content-Length")
		w.WriteHeader(resp.StatusCode)
		flush(w)
		h.relayWatch(w, resp.Body, c, a)
		return true
	case (a.kind == kindGet || a.kind == kindList) && json && (resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusNotFound):
		return h.relayRecorded(w, c, a, resp)
	default:
		h.Metrics.request(a.verb, resultProxied)
		copyHeaders(w.Header(), resp.Header)
		w.WriteHeader(resp.StatusCode)
		copyFlushing(w, resp.Body)
		return true
	}
}

// relayRecorded streams a GET or LIST answer to the client as it arrives,
// keeping a copy (up to the recording limit) that it hands to the
// recorder once the answer is complete. The client never waits for the
// cache: a full recorder queue drops the recording instead.
func (h *Handler) relayRecorded(w http.ResponseWriter, c caller, a apiRequest, resp *http.Response) bool {
	bufp := relayBufs.Get().(*[]byte)
	defer relayBufs.Put(bufp)
	buf := *bufp
	// The first bytes are read before answering, so a body that breaks off
	// at once leaves the client untouched and the next upstream is tried.
	var n int
	var rerr error
	for n == 0 && rerr == nil {
		n, rerr = resp.Body.Read(buf)
	}
	if rerr != nil && !errors.Is(rerr, io.EOF) {
		h.Log.V(2).Info("upstream answer broke off", "verb", a.verb, "err", rerr.Error())
		return false
	}
	h.Metrics.request(a.verb, resultProxied)
	copyHeaders(w.Header(), resp.Header)
	w.WriteHeader(resp.StatusCode)
	keep := newBodyCopy(resp.ContentLength, h.recordLimit())
	for {
		if n > 0 {
			keep.add(buf[:n])
			if _, err := w.Write(buf[:n]); err != nil {
				return true // the client left; an answer it did not take is not recorded
			}
		}
		if errors.Is(rerr, io.EOF) {
			break
		}
		if rerr != nil {
			// Broke off mid-answer: the client must see a broken answer,
			// not a short one that might parse. Nothing is recorded.
			h.Log.V(2).Info("upstream answer broke off while relaying", "verb", a.verb, "err", rerr.Error())
			panic(http.ErrAbortHandler)
		}
		n, rerr = resp.Body.Read(buf)
	}
	if keep.over {
		h.Metrics.recordDropped(dropTooLarge)
		return true
	}
	if len(keep.buf) == 0 {
		return true // an answer to HEAD: nothing to record
	}
	code, body, encoding := resp.StatusCode, keep.buf, resp.Header.Get("Content-Encoding")
	record := func() { h.record(c, a, code, body, encoding) }
	var queued func()
	if a.kind == kindList && code == http.StatusOK && !a.continued && !a.limited {
		// Not paginated, so complete: a newer answer for the same scope
		// queued behind this one makes recording this one pointless.
		var n uint64
		queued = func() { n = h.pending.queued(c.cacheKey, a.scope) }
		record = func() {
			if h.pending.superseded(c.cacheKey, a.scope, n) {
				h.Metrics.RecordSkipped.Inc()
				return
			}
			h.record(c, a, code, body, encoding)
		}
	}
	if res := h.Recorder.submitThen(len(body), record, queued); res != submitQueued {
		h.Metrics.recordDropped(dropReason(res))
	}
	return true
}

// serveOffline answers while no upstream does.
func (h *Handler) serveOffline(w http.ResponseWriter, r *http.Request, c caller, a apiRequest) {
	// What passed online is in the cache before anything is served from
	// it (within a bound: a stuck store must not hang offline answers).
	waitCtx, cancel := context.WithTimeout(r.Context(), time.Second)
	_ = h.Recorder.Wait(waitCtx)
	cancel()
	switch {
	case c.kind == callerAnonymous:
		h.Metrics.request(a.verb, resultOffline)
		writeUnavailable(w, "edgehub: offline (no apiserver reachable); requests without credentials are never answered from the cache")
	case a.kind == kindGet:
		obj, ok := h.Store.Get(c.cacheKey, a.gvr, a.info.Namespace, a.info.Name)
		h.Metrics.lookup(a.verb, ok)
		if !ok {
			h.Metrics.request(a.verb, resultCacheMiss)
			writeUnavailable(w, "edgehub: offline and "+a.describe()+" was never read by this client")
			return
		}
		h.Metrics.request(a.verb, resultCacheHit)
		writeJSON(w, obj)
	case a.kind == kindList:
		res, ok, err := h.Store.List(c.cacheKey, a.scope)
		if err != nil {
			h.Metrics.lookup(a.verb, false)
			h.Metrics.request(a.verb, resultCacheMiss)
			h.Log.Error(err, "offline LIST from the cache failed", "resource", a.gvr.String())
			writeUnavailable(w, "edgehub: offline and the cache could not answer for "+a.describe())
			return
		}
		h.Metrics.lookup(a.verb, ok)
		if !ok {
			h.Metrics.request(a.verb, resultCacheMiss)
			writeUnavailable(w, "edgehub: offline and "+a.describe()+" was never listed by this client")
			return
		}
		h.Metrics.request(a.verb, resultCacheHit)
		writeJSON(w, listJSON(res.Kind, res.APIVersion, res.ResourceVersion, res.Items))
	case a.kind == kindWatch && a.watchList:
		// Refused so client-go falls back to a LIST (answered from the
		// cache) and then a plain WATCH (held open below).
		h.Metrics.request(a.verb, resultOffline)
		writeUnavailable(w, "edgehub: offline; a watch with initial events is not served from the cache, LIST instead")
	case a.kind == kindWatch:
		h.holdWatch(w, r, a)
	default:
		h.Metrics.request(a.verb, resultOffline)
		what := a.verb
		if a.info != nil && a.info.IsResourceRequest {
			what += " " + a.describe()
		} else {
			what += " " + r.URL.Path
		}
		writeUnavailable(w, "edgehub: offline (no apiserver reachable); "+what+" was not sent and is not buffered, retry when the link is back")
	}
}

// holdWatch keeps an offline WATCH open without inventing events. It ends
// when an upstream answers again (the client then re-watches or re-lists
// against it), when the client's timeout passes, or when the client leaves.
func (h *Handler) holdWatch(w http.ResponseWriter, r *http.Request, a apiRequest) {
	h.Metrics.request(a.verb, resultWatchHeld)
	online, changed := h.Balancer.Online()
	if online {
		// Came back between the decision and now: a clean end, the
		// client comes back at once.
		writeWatchHeader(w)
		return
	}
	timeout := 30 * time.Minute
	if s := r.URL.Query().Get("timeoutSeconds"); s != "" {
		if d, err := time.ParseDuration(s + "s"); err == nil && d > 0 {
			timeout = d
		}
	}
	writeWatchHeader(w)
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-changed:
	case <-t.C:
	case <-r.Context().Done():
	case <-h.stopping:
	}
}

func writeWatchHeader(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-cache, private")
	w.WriteHeader(http.StatusOK)
	flush(w)
}

// proxyUpgrade relays exec, attach and port-forward (connection upgrades)
// to the active upstream; nothing is recorded.
func (h *Handler) proxyUpgrade(w http.ResponseWriter, r *http.Request, c caller, a apiRequest) {
	u := h.Balancer.Active()
	if u == nil {
		h.Metrics.request(a.verb, resultOffline)
		writeUnavailable(w, "edgehub: offline (no apiserver reachable); streaming requests need the link")
		return
	}
	h.Metrics.request(a.verb, resultProxied)
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL.Scheme, pr.Out.URL.Host, pr.Out.Host = u.Scheme, u.Host, u.Host
			if c.kind == callerNode {
				pr.Out.Header.Del("Authorization")
			}
		},
		Transport: h.transport(c),
		ErrorHandler: func(w http.ResponseWriter, _ *http.Request, err error) {
			h.Balancer.RequestFailed(u)
			writeUnavailable(w, "edgehub: the apiserver could not be reached for a streaming request")
		},
	}
	rp.ServeHTTP(w, r)
}

func isUpgrade(r *http.Request) bool {
	return r.Header.Get("Upgrade") != "" && strings.Contains(strings.ToLower(r.Header.Get("Connection")), "upgrade")
}

func isJSON(contentType string) bool {
	return strings.HasPrefix(contentType, "application/json")
}

func copyHeaders(dst, src http.Header) {
	for k, vv := range src {
		dst[k] = append([]string(nil), vv...)
	}
	for _, hh := range hopHeaders {
		dst.Del(hh)
	}
}

func writeJSON(w http.ResponseWriter, body []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
}

func flush(w http.ResponseWriter) {
	_ = http.NewResponseController(w).Flush()
}

// copyFlushing relays a body as it arrives, so logs and other streams
// are not held back by buffering.
func copyFlushing(w http.ResponseWriter, body io.Reader) {
	buf := make([]byte, 32*1024)
	for {
		n, err := body.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return
			}
			flush(w)
		}
		if err != nil {
			if !errors.Is(err, io.EOF) {
				return
			}
			return
		}
	}
}

// forwardTokenRequest forwards the node's TokenRequest asking for JSON, and
// keeps a successful answer for offline.
func (h *Handler) forwardTokenRequest(w http.ResponseWriter, r *http.Request, c caller, a apiRequest, key string, changed <-chan struct{}) bool {
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	var stopping <-chan struct{} // nil: never
	if a.kind == kindWatch {
		stopping = h.stopping
	}
	go func() {
		select {
		case <-changed:
			cancel()
		case <-stopping:
			cancel()
		case <-ctx.Done():
		}
	}()
	u := h.Balancer.Active()
	if u == nil {
		return false
	}
	out := h.outRequest(ctx, r, c, a, u)
	out.Header.Set("Accept", "application/json")
	out.Header.Del("Accept-Encoding")
	resp, err := h.transport(c).RoundTrip(out)
	if err != nil {
		if ctx.Err() == nil {
			h.Balancer.RequestFailed(u)
		}
		return false
	}
	defer resp.Body.Close()
	h.Balancer.RequestSucceeded(u)
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return false
	}
	if resp.StatusCode == http.StatusCreated && isJSON(resp.Header.Get("Content-Type")) {
		if err := h.Tokens.put(key, body); err != nil {
			h.Log.Error(err, "keeping a service account token for offline failed", "namespace", a.info.Namespace, "serviceAccount", a.info.Name)
		}
	}
	h.Metrics.request(a.verb, resultProxied)
	copyHeaders(w.Header(), resp.Header)
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(resp.StatusCode)
	_, _ = w.Write(body)
	return true
}

// serveTokenOffline answers the node's TokenRequest with the token issued
// for the same request, while it is valid.
func (h *Handler) serveTokenOffline(w http.ResponseWriter, a apiRequest, key string) {
	body, ok := h.Tokens.get(key)
	h.Metrics.lookup(a.verb, ok)
	if !ok {
		h.Metrics.request(a.verb, resultCacheMiss)
		writeUnavailable(w, fmt.Sprintf("edgehub: offline and no valid token was issued online for this request (service account %s/%s)", a.info.Namespace, a.info.Name))
		return
	}
	h.Metrics.request(a.verb, resultCacheHit)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusCreated)
	_, _ = w.Write(body)
}
