package edgehub

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"sync"

	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/edgeadm/edgeadm/pkg/edgehub/cache"
)

// listMemo remembers, per client partition and resource, the LIST answer
// recorded last, if that was the last write to the resource. A LIST of the
// same scope answered at the same resourceVersion has the same items, so
// recording it again would change nothing: the recorder skips it without
// parsing the items. Any other write to the resource (a GET, a watch
// event, a LIST of another scope, a failed write) forgets the memo, so a
// skip never hides a change. The zero value is ready.
type listMemo struct {
	mu   sync.Mutex
	last map[memoKey]memoList
}

type memoKey struct {
	identity string
	gvr      schema.GroupVersionResource
}

type memoList struct {
	scope                             cache.Scope
	kind, apiVersion, resourceVersion string
}

// maxMemo bounds the memo (token partitions come and go as tokens
// rotate); when full it starts over, which costs one more recording each.
const maxMemo = 4096

func (m *listMemo) unchanged(identity string, scope cache.Scope, head objectHead) bool {
	if head.Metadata.ResourceVersion == "" {
		return false
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	l, ok := m.last[memoKey{identity, scope.GVR}]
	return ok && l == memoList{scope, head.Kind, head.APIVersion, head.Metadata.ResourceVersion}
}

func (m *listMemo) remember(identity string, scope cache.Scope, head objectHead) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.last == nil || len(m.last) >= maxMemo {
		m.last = map[memoKey]memoList{}
	}
	m.last[memoKey{identity, scope.GVR}] = memoList{scope, head.Kind, head.APIVersion, head.Metadata.ResourceVersion}
}

func (m *listMemo) forget(identity string, gvr schema.GroupVersionResource) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.last, memoKey{identity, gvr})
}

// readListHeadAt reads a LIST answer's kind, apiVersion and metadata
// without parsing its items when, as the apiserver writes it, they come
// before the items; it then also returns the offset in body just past the
// "items" key (else 0).
func readListHeadAt(body []byte) (objectHead, int, error) {
	head, at, err := readListHeadFrom(bytes.NewReader(body))
	return head, int(at), err
}

// readListHeadFrom is readListHeadAt reading from r, which it reads only
// as far as the items when they come last.
func readListHeadFrom(r io.Reader) (objectHead, int64, error) {
	var head objectHead
	dec := json.NewDecoder(r)
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return head, 0, fmt.Errorf("a LIST answer that is not a JSON object")
	}
	seenMeta := false
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return head, 0, fmt.Errorf("reading a LIST answer: %w", err)
		}
		key, _ := t.(string)
		switch key {
		case "kind":
			err = dec.Decode(&head.Kind)
		case "apiVersion":
			err = dec.Decode(&head.APIVersion)
		case "metadata":
			err = dec.Decode(&head.Metadata)
			seenMeta = true
		case "items":
			if seenMeta && head.Kind != "" {
				return head, dec.InputOffset(), nil
			}
			var skip json.RawMessage
			err = dec.Decode(&skip)
		default:
			var skip json.RawMessage
			err = dec.Decode(&skip)
		}
		if err != nil {
			return head, 0, fmt.Errorf("reading a LIST answer's %q: %w", key, err)
		}
	}
	return head, 0, nil
}

// listQueue knows, per client partition and LIST scope, the newest
// complete LIST answer waiting in the recorder's queue. Recording a
// complete LIST sets exactly the objects of its scope and touches nothing
// outside it, so an older answer for the same scope still in the queue
// behind a newer one would be overwritten anyway: the recorder skips it.
// This keeps a burst of LISTs from costing the store more than the last.
// The zero value is ready.
type listQueue struct {
	mu     sync.Mutex
	next   uint64
	latest map[queueKey]uint64
}

type queueKey struct {
	identity string
	scope    cache.Scope
}

// queued notes a complete LIST answer just queued; its number is given
// to superseded when the recorder reaches it.
func (q *listQueue) queued(identity string, scope cache.Scope) uint64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.latest == nil {
		q.latest = map[queueKey]uint64{}
	}
	q.next++
	q.latest[queueKey{identity, scope}] = q.next
	return q.next
}

// superseded tells whether a newer complete LIST of the same scope was
// queued after answer n; the newest one clears its entry.
func (q *listQueue) superseded(identity string, scope cache.Scope, n uint64) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	k := queueKey{identity, scope}
	if q.latest[k] != n {
		return true
	}
	delete(q.latest, k)
	return false
}
