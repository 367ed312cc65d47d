package edgehub

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"
)

// initialEventsEnd is the annotation on the BOOKMARK that closes the
// initial events of a watch-list (metav1.InitialEventsAnnotationKey).
const initialEventsEnd = "k8s.io/initial-events-end"

// objectHead is the part of an object edgehub reads to record it.
type objectHead struct {
	Kind       string `json:"kind"`
	APIVersion string `json:"apiVersion"`
	Metadata   struct {
		Namespace       string            `json:"namespace"`
		Name            string            `json:"name"`
		ResourceVersion string            `json:"resourceVersion"`
		Continue        string            `json:"continue"`
		Annotations     map[string]string `json:"annotations"`
	} `json:"metadata"`
}

type listBody struct {
	objectHead
	Items []json.RawMessage `json:"items"`
}

type watchEvent struct {
	Type   string          `json:"type"`
	Object json.RawMessage `json:"object"`
}

// record stores a GET or LIST answer the apiserver gave while online.
func (h *Handler) record(c caller, a apiRequest, code int, body []byte) {
	var err error
	switch {
	case a.kind == kindGet && code == http.StatusOK:
		err = h.Store.Put(c.cacheKey, a.gvr, body)
	case a.kind == kindGet && code == http.StatusNotFound:
		// Gone upstream: offline it must not come back from the cache.
		err = h.Store.Delete(c.cacheKey, a.gvr, a.info.Namespace, a.info.Name)
	case a.kind == kindList && code == http.StatusOK:
		var l listBody
		if err = json.Unmarshal(body, &l); err != nil {
			break
		}
		// A page of a paginated LIST is not the whole answer: recording
		// it as complete would make offline LISTs miss objects.
		if l.Metadata.Continue != "" || a.continued {
			return
		}
		items := make([][]byte, len(l.Items))
		for i, it := range l.Items {
			items[i] = it
		}
		err = h.Store.ReplaceList(c.cacheKey, a.scope, l.Kind, l.APIVersion, l.Metadata.ResourceVersion, items)
	}
	if err != nil {
		h.Metrics.RecordErrors.Inc()
		h.Log.Error(err, "recording an upstream answer in the cache failed", "resource", a.gvr.String())
	}
}

// relayWatch copies a WATCH stream to the client event by event, flushing
// each, and records the events as they pass. A watch-list's initial events
// (up to the bookmark that ends them) are recorded as one complete list.
func (h *Handler) relayWatch(w http.ResponseWriter, body io.Reader, c caller, a apiRequest) {
	dec := json.NewDecoder(body)
	inInitial := a.watchList
	var initial [][]byte
	for {
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return // upstream ended the stream, or edgehub went offline
		}
		if _, err := w.Write(append(raw, '\n')); err != nil {
			return
		}
		flush(w)
		h.Recorder.Do(func() { h.recordEvent(c, a, raw, &inInitial, &initial) })
	}
}

// recordEvent records one watch event; inInitial and initial carry the
// state of a watch-list's initial events between calls (the recorder runs
// them in order, one at a time).
func (h *Handler) recordEvent(c caller, a apiRequest, raw []byte, inInitial *bool, initial *[][]byte) {
	var ev watchEvent
	if err := json.Unmarshal(raw, &ev); err != nil {
		return
	}
	var head objectHead
	if err := json.Unmarshal(ev.Object, &head); err != nil {
		return
	}
	var err error
	switch ev.Type {
	case "ADDED", "MODIFIED":
		if *inInitial {
			*initial = append(*initial, []byte(ev.Object))
			return
		}
		err = h.Store.Put(c.cacheKey, a.gvr, ev.Object)
	case "DELETED":
		err = h.Store.Delete(c.cacheKey, a.gvr, head.Metadata.Namespace, head.Metadata.Name)
	case "BOOKMARK":
		if *inInitial && head.Metadata.Annotations[initialEventsEnd] == "true" {
			*inInitial = false
			err = h.Store.ReplaceList(c.cacheKey, a.scope, listKind(head.Kind), head.APIVersion, head.Metadata.ResourceVersion, *initial)
			*initial = nil
		} else if !*inInitial {
			err = h.Store.Bookmark(c.cacheKey, a.scope, head.Metadata.ResourceVersion)
		}
	}
	if err != nil {
		h.Metrics.RecordErrors.Inc()
		h.Log.Error(err, "recording a watch event in the cache failed", "resource", a.gvr.String(), "type", ev.Type)
	}
}

func listKind(kind string) string {
	if kind == "" || strings.HasSuffix(kind, "List") {
		return kind
	}
	return kind + "List"
}

// Recorder runs recording work on one goroutine, in submission order, so
// the cache sees answers and events in the order they passed while the
// clients do not wait for it.
type Recorder struct {
	q      chan func()
	mu     sync.RWMutex
	closed bool
}

// NewRecorder makes a recorder with a bounded queue: when the store falls
// behind, relaying waits rather than dropping what the cache must know.
func NewRecorder() *Recorder { return &Recorder{q: make(chan func(), 1024)} }

// Run works the queue until it is closed by Close.
func (r *Recorder) Run() {
	for fn := range r.q {
		fn()
	}
}

// Close ends Run after the queued work; later work is dropped (the store
// is about to close).
func (r *Recorder) Close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.closed {
		r.closed = true
		close(r.q)
	}
}

// Do queues fn; on a nil recorder it runs fn at once.
func (r *Recorder) Do(fn func()) {
	if r == nil {
		fn()
		return
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	if !r.closed {
		r.q <- fn
	}
}

// Wait returns once everything queued before it is done, or after max.
func (r *Recorder) Wait(max time.Duration) {
	if r == nil {
		return
	}
	done := make(chan struct{})
	t := time.NewTimer(max)
	defer t.Stop()
	r.mu.RLock()
	if r.closed {
		r.mu.RUnlock()
		return
	}
	select {
	case r.q <- func() { close(done) }:
	case <-t.C:
		r.mu.RUnlock()
		return
	}
	r.mu.RUnlock()
	select {
	case <-done:
	case <-t.C:
	}
}
