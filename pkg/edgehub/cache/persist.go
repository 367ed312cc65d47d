package cache

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/klog/v2"
)

// On-disk layout (one bbolt file, <dir>/cache.db):
//
//	meta/format           formatVersion
//	objects/<key>         crc32c(json) | json           key: identity, group, version, resource, namespace, name
//	scopes/<key>          crc32c(rec)  | rec            key: identity, group, version, resource, namespace, labelSelector, fieldSelector
//	                                                    rec: {"kind","apiVersion","resourceVersion"} as JSON
//
// Key parts are length-prefixed (uvarint), so no character is reserved.
const formatVersion = "edgehub-cache/1"

var (
	bucketMeta    = []byte("meta")
	bucketObjects = []byte("objects")
	bucketScopes  = []byte("scopes")
	keyFormat     = []byte("format")
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func encodeKey(parts ...string) string {
	n := 0
	for _, p := range parts {
		n += binary.MaxVarintLen64 + len(p)
	}
	b := make([]byte, 0, n)
	for _, p := range parts {
		b = binary.AppendUvarint(b, uint64(len(p)))
		b = append(b, p...)
	}
	return string(b)
}

func decodeKey(key []byte, want int) ([]string, error) {
	raw, err := splitKey(key, make([][]byte, 0, want))
	if err != nil {
		return nil, err
	}
	parts := make([]string, len(raw))
	for i, p := range raw {
		parts[i] = string(p)
	}
	if len(parts) != want {
		return nil, fmt.Errorf("key has %d parts, want %d", len(parts), want)
	}
	return parts, nil
}

// splitKey appends the parts of key to parts, aliasing key.
func splitKey(key []byte, parts [][]byte) ([][]byte, error) {
	for len(key) > 0 {
		n, w := binary.Uvarint(key)
		if w <= 0 || uint64(len(key)-w) < n {
			return nil, errors.New("malformed key")
		}
		parts = append(parts, key[w:w+int(n)])
		key = key[w+int(n):]
	}
	return parts, nil
}

func objectKey(identity string, gvr schema.GroupVersionResource, namespace, name string) string {
	return encodeKey(identity, gvr.Group, gvr.Version, gvr.Resource, namespace, name)
}

func scopeKey(identity string, s Scope) string {
	return encodeKey(identity, s.GVR.Group, s.GVR.Version, s.GVR.Resource, s.Namespace, s.LabelSelector, s.FieldSelector)
}

// sealed prefixes payload with its CRC, so a damaged record is found at
// load rather than served.
func sealed(payload []byte) []byte {
	out := make([]byte, 4+len(payload))
	binary.BigEndian.PutUint32(out, crc32.Checksum(payload, castagnoli))
	copy(out[4:], payload)
	return out
}

// unseal checks a record's CRC and returns its payload (aliasing v).
func unseal(v []byte) ([]byte, error) {
	if len(v) < 4 {
		return nil, errors.New("record too short")
	}
	if binary.BigEndian.Uint32(v) != crc32.Checksum(v[4:], castagnoli) {
		return nil, errors.New("record checksum mismatch")
	}
	return v[4:], nil
}

type writeKey struct {
	bucket string
	key    string
}

// writer persists changes in the background: the store records the latest
// value of every changed key (nil for a delete) and the writer commits
// them in one transaction, one fsync, per interval. A burst of watch
// events costs one fsync, and a key changed ten times in an interval is
// written once. What the last interval changed is lost on a crash (not on
// Close, which flushes); the next LIST from the apiserver restores it.
type writer struct {
	db       *bolt.DB
	interval time.Duration
	log      klog.Logger

	mu       sync.Mutex
	pending  map[writeKey][]byte
	inFlight int // keys of the transaction being committed
	lastErr  error

	stop chan struct{}
	done chan struct{}
}

func newWriter(db *bolt.DB, interval time.Duration, log klog.Logger) *writer {
	return &writer{
		db:       db,
		interval: interval,
		log:      log,
		pending:  map[writeKey][]byte{},
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
	}
}

// put records the new value of a key; value must not be modified after.
func (w *writer) put(bucket []byte, key string, value []byte) {
	w.mu.Lock()
	w.pending[writeKey{string(bucket), key}] = value
	w.mu.Unlock()
}

func (w *writer) del(bucket []byte, key string) {
	w.put(bucket, key, nil)
}

func (w *writer) run() {
	defer close(w.done)
	t := time.NewTicker(w.interval)
	defer t.Stop()
	for {
		select {
		case <-w.stop:
			return
		case <-t.C:
			_ = w.flush()
		}
	}
}

// close stops the background loop and flushes what is pending.
func (w *writer) close() error {
	close(w.stop)
	<-w.done
	return w.flush()
}

func (w *writer) flush() error {
	w.mu.Lock()
	batch := w.pending
	if len(batch) == 0 {
		err := w.lastErr
		w.mu.Unlock()
		return err
	}
	w.pending = make(map[writeKey][]byte, len(batch))
	w.inFlight = len(batch)
	w.mu.Unlock()

	err := w.db.Update(func(tx *bolt.Tx) error {
		for k, v := range batch {
			b := tx.Bucket([]byte(k.bucket))
			if b == nil {
				return fmt.Errorf("bucket %q missing", k.bucket)
			}
			if v == nil {
				if err := b.Delete([]byte(k.key)); err != nil {
					return err
				}
				continue
			}
			if err := b.Put([]byte(k.key), sealed(v)); err != nil {
				return err
			}
		}
		return nil
	})

	w.mu.Lock()
	defer w.mu.Unlock()
	w.inFlight = 0
	if err != nil {
		// Keep the batch for the next attempt, unless a key changed again
		// meanwhile: its newer value is already pending.
		for k, v := range batch {
			if _, newer := w.pending[k]; !newer {
				w.pending[k] = v
			}
		}
		if w.lastErr == nil {
			w.log.Error(err, "Writing the edgehub cache to disk failed; keeping changes in memory and retrying", "path", w.db.Path())
		}
		w.lastErr = fmt.Errorf("writing cache %s: %w", w.db.Path(), err)
		return w.lastErr
	}
	if w.lastErr != nil {
		w.log.Info("Writing the edgehub cache to disk works again", "path", w.db.Path())
		w.lastErr = nil
	}
	return nil
}

// status returns how many keys are not yet on disk and the last write error.
func (w *writer) status() (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.pending) + w.inFlight, w.lastErr
}
