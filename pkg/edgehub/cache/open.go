package cache

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/klog/v2"
)

// FileName is the cache file inside the cache directory.
const FileName = "cache.db"

// DefaultFlushInterval is how often changes reach the disk by default.
const DefaultFlushInterval = 100 * time.Millisecond

// Options tune Open.
type Options struct {
	// FlushInterval is how often pending changes are committed to disk
	// (one transaction and one fsync per interval that saw changes).
	// Zero means DefaultFlushInterval.
	FlushInterval time.Duration
	// Log receives the warning when a damaged cache file is set aside and
	// disk write failures. The zero value discards.
	Log klog.Logger
}

// Open loads the cache kept in dir into memory and returns a store that
// serves from memory and persists every change to dir in the background.
//
// dir is created with mode 0700 if missing; an existing dir (or cache
// file) that other users can access or that another user owns is refused
// with an error naming the fix. The cache file is 0600.
//
// A cache file that cannot be read (damaged, or written in a format this
// edgehub does not know) is renamed to cache.db.corrupt (replacing an
// older one) with a logged warning, and Open starts with an empty cache:
// edgehub stays useful online, where it refills the cache, and an empty
// cache serves offline exactly what a failed start would: nothing. Single
// damaged records (CRC mismatch) are dropped with a warning.
func Open(dir string, opts Options) (*DiskStore, error) {
	if opts.FlushInterval <= 0 {
		opts.FlushInterval = DefaultFlushInterval
	}
	if err := prepareDir(dir); err != nil {
		return nil, err
	}
	path := filepath.Join(dir, FileName)
	if err := checkFile(path); err != nil {
		return nil, err
	}

	s := &DiskStore{path: path, log: opts.Log}
	db, bad, err := s.openAndLoad(path)
	var damaged *damagedError
	if errors.As(err, &damaged) {
		aside := path + ".corrupt"
		if rerr := os.Rename(path, aside); rerr != nil {
			return nil, fmt.Errorf("cache %s is unreadable (%v) and could not be set aside: %w; remove it to start with an empty cache", path, err, rerr)
		}
		opts.Log.Info("WARNING: the edgehub cache file was unreadable; set it aside and starting with an empty cache",
			"reason", damaged.err.Error(), "setAside", aside)
		db, bad, err = s.openAndLoad(path)
	}
	if err != nil {
		return nil, err
	}
	if len(bad) > 0 {
		opts.Log.Info("WARNING: dropped damaged records from the edgehub cache", "path", path, "records", len(bad))
	}
	s.db = db
	s.w = newWriter(db, opts.FlushInterval, opts.Log)
	for _, k := range bad {
		s.w.del([]byte(k.bucket), k.key)
	}
	go s.w.run()
	return s, nil
}

// damagedError marks a cache file that is readable as a file but not as a
// cache: Open sets it aside.
type damagedError struct{ err error }

func (e *damagedError) Error() string { return e.err.Error() }
func (e *damagedError) Unwrap() error { return e.err }

// openAndLoad opens the bolt file (creating it with its buckets when new)
// and loads it into s. It returns the keys of damaged records to delete.
func (s *DiskStore) openAndLoad(path string) (*bolt.DB, []writeKey, error) {
	s.identities = map[string]*identityCache{}
	db, err := openBolt(path)
	if err != nil {
		return nil, nil, err
	}
	bad, err := s.load(db)
	if err != nil {
		_ = db.Close()
		return nil, nil, err
	}
	return db, bad, nil
}

func openBolt(path string) (db *bolt.DB, err error) {
	defer func() {
		// bbolt panics on some kinds of page damage.
		if p := recover(); p != nil {
			db, err = nil, &damagedError{fmt.Errorf("opening %s: %v", path, p)}
		}
	}()
	db, err = bolt.Open(path, 0o600, &bolt.Options{
		Timeout: 2 * time.Second,
		// The freelist stays synced (the default): rebuilding it at open
		// walks every page, which cost about a sixth of Open's time.
		FreelistType: bolt.FreelistMapType,
	})
	switch {
	case err == nil:
		return db, nil
	case errors.Is(err, bolt.ErrTimeout):
		return nil, fmt.Errorf("cache %s is locked by another process (another edgehub running?): stop it first", path)
	case isFileSystemError(err):
		return nil, fmt.Errorf("opening cache %s: %w", path, err)
	default:
		return nil, &damagedError{fmt.Errorf("opening %s: %w", path, err)}
	}
}

func isFileSystemError(err error) bool {
	var pe *fs.PathError
	return errors.As(err, &pe) && !errors.Is(err, bolt.ErrInvalid)
}

// scopeRecord is a covered scope's value on disk.
type scopeRecord struct {
	Kind            string `json:"kind"`
	APIVersion      string `json:"apiVersion"`
	ResourceVersion string `json:"resourceVersion"`
}

func (s *DiskStore) load(db *bolt.DB) (bad []writeKey, err error) {
	defer func() {
		if p := recover(); p != nil {
			bad, err = nil, &damagedError{fmt.Errorf("reading %s: %v", db.Path(), p)}
		}
	}()
	fresh := false
	var records []*objectRecord
	var rd objectReader
	err = db.View(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if meta == nil {
			empty := true
			_ = tx.ForEach(func([]byte, *bolt.Bucket) error { empty = false; return nil })
			if empty {
				fresh = true
				return nil
			}
			return &damagedError{errors.New("no format version recorded")}
		}
		if f := string(meta.Get(keyFormat)); f != formatVersion {
			return &damagedError{fmt.Errorf("format %q, this edgehub reads %q", f, formatVersion)}
		}
		scopes, objects := tx.Bucket(bucketScopes), tx.Bucket(bucketObjects)
		if scopes == nil || objects == nil {
			return &damagedError{errors.New("buckets missing")}
		}
		// Scopes first: their field selectors decide which fields the
		// objects are indexed by, so every object is scanned once.
		if err := scopes.ForEach(func(k, v []byte) error {
			if err := s.loadScope(k, v); err != nil {
				bad = append(bad, writeKey{string(bucketScopes), string(k)})
			}
			return nil
		}); err != nil {
			return err
		}
		return objects.ForEach(func(k, v []byte) error {
			rec, err := rd.read(s, k, v)
			if err != nil {
				bad = append(bad, writeKey{string(bucketObjects), string(k)})
				return nil
			}
			records = append(records, rec)
			return nil
		})
	})
	if err == nil {
		bad = append(bad, s.indexObjects(records)...)
	}
	if err != nil || !fresh {
		return bad, err
	}
	return nil, db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketMeta, bucketScopes, bucketObjects} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return fmt.Errorf("creating bucket %s in %s: %w", b, db.Path(), err)
			}
		}
		return tx.Bucket(bucketMeta).Put(keyFormat, []byte(formatVersion))
	})
}

func (s *DiskStore) loadScope(k, v []byte) error {
	parts, err := decodeKey(k, 7)
	if err != nil {
		return err
	}
	payload, err := unseal(v)
	if err != nil {
		return err
	}
	var rec scopeRecord
	if err := json.Unmarshal(payload, &rec); err != nil {
		return err
	}
	scope := Scope{
		GVR:           schema.GroupVersionResource{Group: parts[1], Version: parts[2], Resource: parts[3]},
		Namespace:     parts[4],
		LabelSelector: parts[5],
		FieldSelector: parts[6],
	}
	sel, err := parseSelectors(scope)
	if err != nil {
		return err
	}
	r := s.resourceFor(parts[0], scope.GVR)
	r.indexFields(sel.fieldNames, true)
	r.scopes[scope] = &coveredScope{kind: rec.Kind, apiVersion: rec.APIVersion, resourceVersion: rec.ResourceVersion, sel: sel}
	return nil
}

// objectRecord is an object read from disk, not yet indexed.
type objectRecord struct {
	key      string // its key in the objects bucket
	ns, name string // substrings of key
	r        *resourceCache
	sealed   []byte // CRC and JSON, copied out of the mmap
	e        *entry
	err      error
}

// objectReader copies records out of bolt's mmap (valid only during the
// transaction); checking and scanning wait for indexObjects, which spreads
// them over the CPUs. Keys come sorted, so consecutive records mostly
// share identity and resource: the reader looks those up once per run.
type objectReader struct {
	parts  [][]byte
	prefix []byte // identity, group, version, resource of the last record
	r      *resourceCache
}

func (rd *objectReader) read(s *DiskStore, k, v []byte) (*objectRecord, error) {
	parts, err := splitKey(k, rd.parts[:0])
	rd.parts = parts
	if err != nil {
		return nil, err
	}
	if len(parts) != 6 {
		return nil, fmt.Errorf("key has %d parts, want 6", len(parts))
	}
	// parts alias k: the prefix ends where the namespace's length begins.
	nsStart := len(k) - len(parts[5]) - uvarintLen(len(parts[5])) - len(parts[4]) - uvarintLen(len(parts[4]))
	if rd.r == nil || !bytes.Equal(rd.prefix, k[:nsStart]) {
		gvr := schema.GroupVersionResource{Group: string(parts[1]), Version: string(parts[2]), Resource: string(parts[3])}
		rd.r = s.resourceFor(string(parts[0]), gvr)
		rd.prefix = append(rd.prefix[:0], k[:nsStart]...)
	}
	key := string(k)
	nameStart := len(k) - len(parts[5])
	return &objectRecord{
		key:    key,
		ns:     key[nameStart-uvarintLen(len(parts[5]))-len(parts[4]) : nameStart-uvarintLen(len(parts[5]))],
		name:   key[nameStart:],
		r:      rd.r,
		sealed: append([]byte(nil), v...),
	}, nil
}

func uvarintLen(n int) int {
	var b [binary.MaxVarintLen64]byte
	return binary.PutUvarint(b[:], uint64(n))
}

// indexObjects checks and scans records in parallel (the resources' scan
// plans are fixed by now: scopes were loaded first), then files them. It
// returns the keys of damaged records.
func (s *DiskStore) indexObjects(records []*objectRecord) []writeKey {
	workers := min(runtime.GOMAXPROCS(0), 8)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < len(records); i += workers {
				records[i].index()
			}
		}()
	}
	wg.Wait()
	var bad []writeKey
	for _, rec := range records {
		if rec.err != nil {
			bad = append(bad, writeKey{string(bucketObjects), rec.key})
			continue
		}
		rec.r.set(rec.e)
	}
	return bad
}

func (rec *objectRecord) index() {
	raw, err := unseal(rec.sealed)
	if err != nil {
		rec.err = err
		return
	}
	res, err := scan(raw, rec.r.plan)
	if err != nil {
		rec.err = err
		return
	}
	rec.e = rec.r.newEntry(raw, res)
	if rec.e.namespace != rec.ns || rec.e.name != rec.name {
		rec.err = errors.New("object does not match its key")
	}
	rec.sealed = nil
}
