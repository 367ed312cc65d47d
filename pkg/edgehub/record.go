package edgehub

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
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

// record stores a GET or LIST answer the apiserver gave while online. It
// runs on the recorder's goroutine: body is the copy taken while the answer
// streamed to the client, still compressed when encoding says so.
func (h *Handler) record(c caller, a apiRequest, code int, body []byte, encoding string) {
	if a.kind == kindList && code == http.StatusOK && h.listUnchanged(c, a, body, encoding) {
		h.Metrics.RecordSkipped.Inc()
		return
	}
	body, err := decodeBody(body, encoding, h.recordLimit())
	if errors.Is(err, errBodyTooLarge) {
		h.Metrics.recordDropped(dropTooLarge)
		return
	}
	if err == nil {
		err = h.recordDecoded(c, a, code, body)
	}
	if err != nil {
		h.Metrics.RecordErrors.Inc()
		h.Log.Error(err, "recording an upstream answer in the cache failed", "resource", a.gvr.String())
	}
}

// listUnchanged tells whether a LIST answer is the one last recorded for
// its scope (listMemo), reading only its head: a compressed answer is not
// inflated past it.
func (h *Handler) listUnchanged(c caller, a apiRequest, body []byte, encoding string) bool {
	r, err := headReader(body, encoding)
	if err != nil {
		return false // recording reports it
	}
	head, _, err := readListHeadFrom(r)
	return err == nil && head.Metadata.Continue == "" && !a.continued && h.lists.unchanged(c.cacheKey, a.scope, head)
}

func (h *Handler) recordDecoded(c caller, a apiRequest, code int, body []byte) error {
	switch {
	case a.kind == kindGet && code == http.StatusOK:
		h.lists.forget(c.cacheKey, a.gvr)
		return h.Store.Put(c.cacheKey, a.gvr, body)
	case a.kind == kindGet && code == http.StatusNotFound:
		// Gone upstream: offline it must not come back from the cache.
		h.lists.forget(c.cacheKey, a.gvr)
		return h.Store.Delete(c.cacheKey, a.gvr, a.info.Namespace, a.info.Name)
	case a.kind == kindList && code == http.StatusOK:
		head, itemsAt, err := readListHeadAt(body)
		if err != nil {
			return err
		}
		// A page of a paginated LIST is not the whole answer: recording
		// it as complete would make offline LISTs miss objects.
		if head.Metadata.Continue != "" || a.continued {
			return nil
		}
		head, items, err := listItems(body, head, itemsAt)
		if err != nil {
			h.lists.forget(c.cacheKey, a.gvr)
			return err
		}
		if err := h.Store.ReplaceList(c.cacheKey, a.scope, head.Kind, head.APIVersion, head.Metadata.ResourceVersion, items); err != nil {
			h.lists.forget(c.cacheKey, a.gvr)
			return err
		}
		h.lists.remember(c.cacheKey, a.scope, head)
	}
	return nil
}

// relayWatch copies a WATCH stream to the client event by event, flushing
// each, and records the events as they pass. A watch-list's initial events
// (up to the bookmark that ends them) are recorded as one complete list.
//
// When the recorder's queue is full an event cannot be recorded. Recording
// the events after it would leave a hole (a missed DELETED brings a pod
// back offline), and so would the client's next watch, which resumes after
// the event it saw. So the stream ends with the error an apiserver sends
// for a resourceVersion it no longer has (410 Expired): client-go's
// reflectors then LIST again, and that answer is recorded whole. Until
// then the cache holds the state as of the last recorded event.
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
		if res := h.Recorder.submit(len(raw), func() { h.recordEvent(c, a, raw, &inInitial, &initial) }); res != submitQueued {
			h.Metrics.recordDropped(dropReason(res))
			h.Log.Info("edgehub: a watch event could not be recorded; ending the watch as expired so its client lists again",
				"reason", dropReason(res), "resource", a.gvr.String(), "namespace", a.scope.Namespace)
			_, _ = w.Write(expiredEvent())
			flush(w)
			return
		}
	}
}

// expiredEvent is the watch event an apiserver sends when the client's
// resourceVersion is too old to continue from.
func expiredEvent() []byte {
	b, _ := json.Marshal(map[string]any{"type": "ERROR", "object": metav1.Status{
		TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"},
		Status:   metav1.StatusFailure,
		Reason:   metav1.StatusReasonExpired,
		Code:     http.StatusGone,
		Message:  "edgehub: this watch could not be recorded for offline use (recorder busy); list again",
	}})
	return append(b, '\n')
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
	// Any write by a watch makes the next LIST of this resource worth
	// recording again.
	h.lists.forget(c.cacheKey, a.gvr)
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
