package cache

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr/funcr"
	bolt "go.etcd.io/bbolt"
)

func TestPersistsAcrossCloseAndOpen(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "cache")
	// An interval far beyond the test: only Close can have written.
	s, err := Open(dir, Options{FlushInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	web := map[string]string{"app": "web"}
	scope := Scope{GVR: podsGVR, Namespace: "a", FieldSelector: "spec.nodeName=n1"}
	must(t, s.ReplaceList("node", scope, "PodList", "v1", "10", [][]byte{pod(t, "a", "p1", "n1", "8", web), pod(t, "a", "p2", "n1", "9", web)}))
	must(t, s.Put("node", podsGVR, pod(t, "a", "p3", "n1", "12", web)))
	must(t, s.Delete("node", podsGVR, "a", "p1"))
	must(t, s.Bookmark("node", scope, "15"))
	must(t, s.Put("sa:kube-system/coredns", podsGVR, pod(t, "kube-system", "dns", "n1", "3", nil)))
	wantGet, _ := s.Get("node", podsGVR, "a", "p3")
	must(t, s.Close())
	if err := s.Put("node", podsGVR, pod(t, "a", "late", "n1", "1", nil)); err == nil {
		t.Error("Put after Close succeeded")
	}

	s2, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	res := mustList(t, s2, "node", scope)
	if got := names(res.Items); !slices.Equal(got, []string{"a/p2", "a/p3"}) {
		t.Errorf("after reopening: %v, want [a/p2 a/p3]", got)
	}
	if res.ResourceVersion != "15" || res.Kind != "PodList" || res.APIVersion != "v1" {
		t.Errorf("after reopening: %s %s rv %s, want PodList v1 rv 15", res.Kind, res.APIVersion, res.ResourceVersion)
	}
	if got, ok := s2.Get("node", podsGVR, "a", "p3"); !ok || string(got) != string(wantGet) {
		t.Error("p3, put just before Close, did not come back intact")
	}
	if _, ok := s2.Get("sa:kube-system/coredns", podsGVR, "kube-system", "dns"); !ok {
		t.Error("the second identity's object did not come back")
	}
	if _, ok := s2.Get("node", podsGVR, "kube-system", "dns"); ok {
		t.Error("after reopening, one identity sees another's object")
	}
	// Selectors still work from the reloaded index.
	if got := names(mustList(t, s2, "node", Scope{GVR: podsGVR, Namespace: "a", FieldSelector: "spec.nodeName=n1", LabelSelector: "app=web"}).Items); len(got) != 2 {
		t.Errorf("label selector after reopening: %v", got)
	}
}

func TestBackgroundFlushWritesWithoutClose(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "cache")
	s, err := Open(dir, Options{FlushInterval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	must(t, s.Put("node", podsGVR, pod(t, "a", "p1", "n1", "1", nil)))
	deadline := time.Now().Add(10 * time.Second)
	for s.Stats().PendingWrites > 0 {
		if time.Now().After(deadline) {
			t.Fatal("the writer did not flush within 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
	err = s.db.View(func(tx *bolt.Tx) error {
		if tx.Bucket(bucketObjects).Get([]byte(objectKey("node", podsGVR, "a", "p1"))) == nil {
			t.Error("flushed object is not in the file")
		}
		return nil
	})
	must(t, err)
}

func TestModes(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "new", "cache")
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	must(t, s.Put("node", podsGVR, pod(t, "a", "p1", "n1", "1", nil)))
	must(t, s.Close())
	for path, want := range map[string]os.FileMode{dir: 0o700, filepath.Join(dir, FileName): 0o600} {
		st, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if got := st.Mode().Perm(); got != want {
			t.Errorf("%s has mode %04o, want %04o", path, got, want)
		}
	}
}

func TestRefusesUnsafePaths(t *testing.T) {
	t.Run("dir open to others", func(t *testing.T) {
		dir := t.TempDir()
		must(t, os.Chmod(dir, 0o755))
		_, err := Open(dir, Options{})
		if err == nil || !strings.Contains(err.Error(), "chmod 0700 "+dir) {
			t.Fatalf("Open of a 0755 dir: %v; want a refusal naming chmod 0700", err)
		}
		if _, statErr := os.Stat(filepath.Join(dir, FileName)); statErr == nil {
			t.Error("a cache file was created in the refused dir")
		}
	})
	t.Run("file open to others", func(t *testing.T) {
		dir := t.TempDir()
		must(t, os.Chmod(dir, 0o700))
		path := filepath.Join(dir, FileName)
		must(t, os.WriteFile(path, nil, 0o644))
		must(t, os.Chmod(path, 0o644))
		if _, err := Open(dir, Options{}); err == nil || !strings.Contains(err.Error(), "chmod 0600 "+path) {
			t.Fatalf("Open with a 0644 cache file: %v; want a refusal naming chmod 0600", err)
		}
	})
	t.Run("not a directory", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "file")
		must(t, os.WriteFile(path, nil, 0o600))
		if _, err := Open(path, Options{}); err == nil || !strings.Contains(err.Error(), "not a directory") {
			t.Fatalf("Open of a file: %v", err)
		}
	})
	t.Run("dir of another user", func(t *testing.T) {
		if os.Geteuid() != 0 {
			t.Skip("needs root to give a directory to another user")
		}
		dir := t.TempDir()
		must(t, os.Chmod(dir, 0o700))
		must(t, os.Chown(dir, 65534, 65534))
		if _, err := Open(dir, Options{}); err == nil || !strings.Contains(err.Error(), "owned by uid 65534") {
			t.Fatalf("Open of another user's dir: %v", err)
		}
	})
}

func TestSecondOpenIsRefusedWhileInUse(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "cache")
	s := openAt(t, dir, Options{})
	defer s.Close()
	if _, err := Open(dir, Options{}); err == nil || !strings.Contains(err.Error(), "locked by another process") {
		t.Fatalf("second Open: %v; want a refusal saying the cache is in use", err)
	}
}

// logSink collects log lines.
type logSink struct {
	mu    sync.Mutex
	lines []string
}

func (l *logSink) logger() funcr.Options { return funcr.Options{} }

func (l *logSink) add(prefix, args string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, prefix+" "+args)
}

func (l *logSink) text() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}

func TestDamagedFileIsSetAside(t *testing.T) {
	for name, write := range map[string]func(t *testing.T, path string){
		"garbage": func(t *testing.T, path string) {
			must(t, os.WriteFile(path, []byte(strings.Repeat("not a bolt file ", 1000)), 0o600))
		},
		"unknown format": func(t *testing.T, path string) {
			db := boltAt(t, path)
			must(t, db.Update(func(tx *bolt.Tx) error {
				b, err := tx.CreateBucket(bucketMeta)
				if err != nil {
					return err
				}
				return b.Put(keyFormat, []byte("edgehub-cache/99"))
			}))
			must(t, db.Close())
		},
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			must(t, os.Chmod(dir, 0o700))
			path := filepath.Join(dir, FileName)
			write(t, path)
			sink := &logSink{}
			s, err := Open(dir, Options{Log: funcr.New(sink.add, sink.logger())})
			if err != nil {
				t.Fatalf("Open of a damaged cache: %v; want an empty cache", err)
			}
			defer s.Close()
			if st := s.Stats(); st.Objects != 0 {
				t.Errorf("cache not empty: %+v", st)
			}
			if _, err := os.Stat(path + ".corrupt"); err != nil {
				t.Errorf("damaged file not kept aside: %v", err)
			}
			if !strings.Contains(sink.text(), "set it aside") {
				t.Errorf("no warning logged; log:\n%s", sink.text())
			}
			must(t, s.Put("node", podsGVR, pod(t, "a", "p1", "n1", "1", nil)))
		})
	}
}

func TestDamagedRecordIsDropped(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "cache")
	s := openAt(t, dir, Options{})
	must(t, s.ReplaceList("node", Scope{GVR: podsGVR}, "PodList", "v1", "3", [][]byte{pod(t, "a", "good", "n1", "1", nil), pod(t, "a", "bad", "n1", "2", nil)}))
	must(t, s.Close())

	db := boltAt(t, filepath.Join(dir, FileName))
	must(t, db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketObjects)
		k := []byte(objectKey("node", podsGVR, "a", "bad"))
		v := append([]byte(nil), b.Get(k)...)
		v[len(v)/2] ^= 0xff // one flipped byte, as a bad disk sector would
		return b.Put(k, v)
	}))
	must(t, db.Close())

	sink := &logSink{}
	s2 := openAt(t, dir, Options{Log: funcr.New(sink.add, sink.logger())})
	defer s2.Close()
	if _, ok := s2.Get("node", podsGVR, "a", "bad"); ok {
		t.Error("a damaged record was served")
	}
	if _, ok := s2.Get("node", podsGVR, "a", "good"); !ok {
		t.Error("an intact record was lost with the damaged one")
	}
	if !strings.Contains(sink.text(), "dropped damaged records") {
		t.Errorf("no warning logged; log:\n%s", sink.text())
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func openAt(t testing.TB, dir string, opts Options) *DiskStore {
	t.Helper()
	s, err := Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func boltAt(t testing.TB, path string) *bolt.DB {
	t.Helper()
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	return db
}

// A failed commit keeps the changes pending, reports the error, and Close
// says the data did not reach the disk.
func TestFailedWriteIsKeptAndReported(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "cache")
	s := openAt(t, dir, Options{FlushInterval: time.Hour})
	must(t, s.db.Close()) // every commit fails from here on
	must(t, s.Put("node", podsGVR, pod(t, "a", "p1", "n1", "1", nil)))
	if err := s.w.flush(); err == nil {
		t.Fatal("flush to a closed file succeeded")
	}
	st := s.Stats()
	if st.WriteError == nil || st.PendingWrites != 1 {
		t.Errorf("after a failed write: %+v, want the error and 1 pending write", st)
	}
	if _, ok := s.Get("node", podsGVR, "a", "p1"); !ok {
		t.Error("memory lost the object when the disk write failed")
	}
	if err := s.Close(); err == nil {
		t.Error("Close reported success though the last changes never reached the disk")
	}
}
