package installpkg

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const testK8s = "v1.37.1"

// stageTree writes a small package tree: every required file, with content that names
// it, plus what extra adds (path -> content; a path ending in "*" is executable).
func stageTree(t testing.TB, dir string, extra map[string]string) {
	t.Helper()
	files := map[string]string{}
	for _, p := range RequiredFiles() {
		files[p] = "content of " + p + "\n"
	}
	for p, c := range extra {
		files[p] = c
	}
	for p, c := range files {
		mode := os.FileMode(0o644)
		if isExecutablePath(p) {
			mode = 0o755
		}
		full := filepath.Join(dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(c), mode); err != nil {
			t.Fatal(err)
		}
	}
}

func testInput(dir, arch string) BuildInput {
	return BuildInput{
		Dir: dir, KubernetesVersion: testK8s, Arch: arch,
		Versions: map[string]string{"kubernetes": testK8s, "containerd": "v2.4.2"},
		Images:   []Image{{Path: "images/pause.tar", Ref: "registry.k8s.io/pause:3.10.2"}},
	}
}

// buildArchive returns a valid package for arch.
func buildArchive(t testing.TB, arch string, extra map[string]string) []byte {
	t.Helper()
	dir := t.TempDir()
	stageTree(t, dir, extra)
	var buf bytes.Buffer
	if _, err := WriteArchive(&buf, testInput(dir, arch)); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

type rawEntry struct {
	hdr  tar.Header
	body []byte
}

// readEntries lists a package's tar entries, content included.
func readEntries(t testing.TB, archive []byte) []rawEntry {
	t.Helper()
	gz, err := gzip.NewReader(bytes.NewReader(archive))
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(gz)
	var out []rawEntry
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, rawEntry{hdr: *hdr, body: body})
	}
}

// writeEntries packs entries as given; a regular entry's size is its body's.
func writeEntries(t testing.TB, entries []rawEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for _, e := range entries {
		h := e.hdr
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(e.body))
		}
		if h.Format == tar.FormatUSTAR && len(h.Name) > 100 {
			h.Format = tar.FormatPAX
		}
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatalf("header %q: %v", h.Name, err)
		}
		if len(e.body) > 0 {
			if _, err := tw.Write(e.body); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := gz.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// find returns the index of the entry named name.
func find(t testing.TB, entries []rawEntry, name string) int {
	t.Helper()
	for i, e := range entries {
		if e.hdr.Name == name {
			return i
		}
	}
	t.Fatalf("no entry %s", name)
	return -1
}

// openArchive writes archive to a file and opens it as an amd64 host would. On error it
// also checks that nothing is left in the work dir.
func openArchive(t testing.TB, archive []byte, o Options) (*Package, error) {
	t.Helper()
	file := filepath.Join(t.TempDir(), "kube-linux-amd64-v1.37.1.tar.gz")
	if err := os.WriteFile(file, archive, 0o644); err != nil {
		t.Fatal(err)
	}
	src, err := ParseSource(file, nil)
	if err != nil {
		t.Fatal(err)
	}
	o.Source = src
	if o.Dir == "" {
		o.Dir = t.TempDir()
	}
	if o.HostArch == "" {
		o.HostArch = "amd64"
	}
	p, err := Open(context.Background(), o)
	if err != nil {
		assertEmptyDir(t, o.Dir)
		return nil, err
	}
	t.Cleanup(func() { p.Close() })
	return p, nil
}

func assertEmptyDir(t testing.TB, dir string) {
	t.Helper()
	left, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(left) != 0 {
		t.Errorf("work dir %s not cleaned up: %v", dir, left)
	}
}

// wantErr fails unless err is of class and its message contains every part.
func wantErr(t testing.TB, err, class error, parts ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error; want %v", class)
	}
	if class != nil && !errors.Is(err, class) {
		t.Fatalf("error %q is not %v", err, class)
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Errorf("error %q does not mention %q", err, p)
		}
	}
}
