package installpkg

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestOpenValidPackage(t *testing.T) {
	archive := buildArchive(t, "amd64", map[string]string{"images/other.tar": "another image\n"})
	dir := t.TempDir()
	var progress bytes.Buffer
	p, err := openArchive(t, archive, Options{Dir: dir, Progress: &progress})
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(p.Dir)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o700 || filepath.Dir(p.Dir) != dir {
		t.Errorf("temp dir %s has mode %v, want 0700 below %s", p.Dir, st.Mode().Perm(), dir)
	}
	if p.Manifest.Arch != "amd64" || p.Manifest.KubernetesVersion != testK8s || len(p.SHA256) != 64 {
		t.Errorf("package %+v", p)
	}
	c := p.Components
	for name, path := range map[string]string{
		"kubelet": c.Kubelet, "kubectl": c.Kubectl, "crictl": c.Crictl, "containerd": c.Containerd,
		"shim": c.ContainerdShim, "ctr": c.Ctr, "runc": c.Runc, "containerd unit": c.ContainerdUnit,
		"kubelet unit": c.KubeletUnit, "drop-in": c.KubeletDropIn, "config": c.ContainerdConfig, "pause": c.PauseImage,
	} {
		if !strings.HasPrefix(path, p.Root+"/") {
			t.Errorf("%s at %q, not below %s", name, path, p.Root)
			continue
		}
		if _, err := os.Stat(path); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	if st, _ := os.Stat(c.Kubelet); st == nil || st.Mode().Perm() != 0o755 {
		t.Errorf("kubelet mode %v", st)
	}
	if st, _ := os.Stat(c.KubeletUnit); st == nil || st.Mode().Perm() != 0o644 {
		t.Errorf("kubelet.service mode %v", st)
	}
	if c.Edgehub != "" || c.EdgehubUnit != "" {
		t.Errorf("edgehub %q %q in a package without it", c.Edgehub, c.EdgehubUnit)
	}
	if c.PauseImageRef != "registry.k8s.io/pause:3.10.2" || len(c.Images) != 1 {
		t.Errorf("images %+v", c.Images)
	}
	if strings.Join(c.CNIPlugins, ",") != "bridge,host-local,loopback,portmap" {
		t.Errorf("CNI plugins %v", c.CNIPlugins)
	}
	if _, err := os.Stat(filepath.Join(p.Dir, archiveName)); !os.IsNotExist(err) {
		t.Errorf("archive copy left after unpacking: %v", err)
	}
	if !strings.Contains(progress.String(), "verified 17 files") {
		t.Errorf("progress output %q", progress.String())
	}
	if err := p.Verify(); err != nil {
		t.Errorf("Verify: %v", err)
	}

	// Verify notices a change after Open.
	if err := os.WriteFile(c.ContainerdConfig, []byte("content of config/containerd.toml\r"), 0o644); err != nil {
		t.Fatal(err)
	}
	wantErr(t, p.Verify(), ErrManifest, "config/containerd.toml has sha256")
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	assertEmptyDir(t, dir)
}

func TestOpenWithEdgehub(t *testing.T) {
	archive := buildArchive(t, "amd64", map[string]string{"bin/edgehub": "edgehub", "systemd/edgehub.service": "[Unit]\n"})
	p, err := openArchive(t, archive, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if p.Components.Edgehub == "" || p.Components.EdgehubUnit == "" {
		t.Errorf("edgehub missing from %+v", p.Components)
	}
}

// TestOpenRefuses: every kind of bad archive fails with its class and names the file,
// and leaves nothing behind (openArchive checks the work dir).
func TestOpenRefuses(t *testing.T) {
	good := buildArchive(t, "amd64", nil)
	arm := buildArchive(t, "arm64", nil)
	edit := func(f func(es []rawEntry) []rawEntry) []byte {
		return writeEntries(t, f(readEntries(t, good)))
	}
	withManifest := func(es []rawEntry, f func(m map[string]any)) []rawEntry {
		var m map[string]any
		if err := json.Unmarshal(es[0].body, &m); err != nil {
			t.Fatal(err)
		}
		f(m)
		b, _ := json.Marshal(m)
		es[0].body = b
		return es
	}
	reg := func(name string, body string, mode int64) rawEntry {
		return rawEntry{hdr: tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Format: tar.FormatPAX}, body: []byte(body)}
	}
	tests := []struct {
		name    string
		archive []byte
		opts    Options
		class   error
		parts   []string
	}{
		{"tampered file", edit(func(es []rawEntry) []rawEntry {
			i := find(t, es, "bin/kubelet")
			es[i].body = bytes.ToUpper(es[i].body)
			return es
		}), Options{}, ErrManifest, []string{"bin/kubelet has sha256", "get a fresh copy"}},
		{"dot-dot entry", edit(func(es []rawEntry) []rawEntry {
			return append(es, reg("../evil", "x", 0o644))
		}), Options{}, ErrUnsafe, []string{`"../evil"`, `".."`}},
		{"dot-dot inside", edit(func(es []rawEntry) []rawEntry {
			return append(es, reg("bin/../../evil", "x", 0o644))
		}), Options{}, ErrUnsafe, []string{"bin/../../evil"}},
		{"absolute path", edit(func(es []rawEntry) []rawEntry {
			return append(es, reg("/etc/evil", "x", 0o644))
		}), Options{}, ErrUnsafe, []string{"/etc/evil", "absolute"}},
		{"symlink escape", edit(func(es []rawEntry) []rawEntry {
			return append(es, rawEntry{hdr: tar.Header{Typeflag: tar.TypeSymlink, Name: "bin/evil", Linkname: "../../../etc", Mode: 0o777}})
		}), Options{}, ErrUnsafe, []string{"symlink bin/evil -> ../../../etc points outside"}},
		{"absolute symlink", edit(func(es []rawEntry) []rawEntry {
			return append(es, rawEntry{hdr: tar.Header{Typeflag: tar.TypeSymlink, Name: "evil", Linkname: "/etc/shadow", Mode: 0o777}})
		}), Options{}, ErrUnsafe, []string{"points outside"}},
		{"symlink inside", edit(func(es []rawEntry) []rawEntry {
			return append(es, rawEntry{hdr: tar.Header{Typeflag: tar.TypeSymlink, Name: "bin/k", Linkname: "kubelet", Mode: 0o777}})
		}), Options{}, ErrUnsafe, []string{"symlink bin/k -> kubelet", "no links"}},
		{"symlink then write through it", edit(func(es []rawEntry) []rawEntry {
			return append([]rawEntry{es[0], {hdr: tar.Header{Typeflag: tar.TypeSymlink, Name: "bin", Linkname: "/tmp", Mode: 0o777}}}, es[1:]...)
		}), Options{}, ErrUnsafe, []string{"symlink bin -> /tmp"}},
		{"hardlink escape", edit(func(es []rawEntry) []rawEntry {
			return append(es, rawEntry{hdr: tar.Header{Typeflag: tar.TypeLink, Name: "bin/evil", Linkname: "../etc/passwd", Mode: 0o644}})
		}), Options{}, ErrUnsafe, []string{"hard link bin/evil -> ../etc/passwd points outside"}},
		{"absolute hardlink", edit(func(es []rawEntry) []rawEntry {
			return append(es, rawEntry{hdr: tar.Header{Typeflag: tar.TypeLink, Name: "bin/evil", Linkname: "/etc/passwd", Mode: 0o644}})
		}), Options{}, ErrUnsafe, []string{"points outside"}},
		{"character device", edit(func(es []rawEntry) []rawEntry {
			return append(es, rawEntry{hdr: tar.Header{Typeflag: tar.TypeChar, Name: "dev/null", Mode: 0o666, Devmajor: 1, Devminor: 3}})
		}), Options{}, ErrUnsafe, []string{"dev/null is a character device"}},
		{"block device", edit(func(es []rawEntry) []rawEntry {
			return append(es, rawEntry{hdr: tar.Header{Typeflag: tar.TypeBlock, Name: "sda", Mode: 0o660, Devmajor: 8}})
		}), Options{}, ErrUnsafe, []string{"sda is a block device"}},
		{"fifo", edit(func(es []rawEntry) []rawEntry {
			return append(es, rawEntry{hdr: tar.Header{Typeflag: tar.TypeFifo, Name: "pipe", Mode: 0o644}})
		}), Options{}, ErrUnsafe, []string{"pipe is a fifo"}},
		{"setuid", edit(func(es []rawEntry) []rawEntry {
			es[find(t, es, "bin/runc")].hdr.Mode = 0o4755
			return es
		}), Options{}, ErrUnsafe, []string{"bin/runc has setuid"}},
		{"world-writable", edit(func(es []rawEntry) []rawEntry {
			es[find(t, es, "bin/runc")].hdr.Mode = 0o777
			return es
		}), Options{}, ErrUnsafe, []string{"bin/runc", "writable by group or others"}},
		{"duplicate entry", edit(func(es []rawEntry) []rawEntry {
			return append(es, es[find(t, es, "bin/kubelet")])
		}), Options{}, ErrUnsafe, []string{"bin/kubelet appears twice"}},
		{"duplicate manifest", edit(func(es []rawEntry) []rawEntry {
			return append(es, es[0])
		}), Options{}, ErrUnsafe, []string{"manifest.json appears twice"}},
		{"file over the per-file limit", good, Options{Limits: Limits{MaxFile: 20}}, ErrTooLarge,
			[]string{"bin/containerd", "per file"}},
		{"package over the total limit", good, Options{Limits: Limits{MaxTotal: 100}}, ErrTooLarge,
			[]string{"unpacks to more than"}},
		{"archive over the archive limit", good, Options{Limits: Limits{MaxArchive: 100}}, ErrTooLarge,
			[]string{"more than the limit"}},
		{"too many entries", good, Options{Limits: Limits{MaxEntries: 5}}, ErrTooLarge, []string{"more than 5 entries"}},
		{"no manifest", edit(func(es []rawEntry) []rawEntry { return es[1:] }), Options{}, ErrManifest,
			[]string{`starts with "bin/"`, "not an edgeadm install package"}},
		{"manifest not first", edit(func(es []rawEntry) []rawEntry {
			return append(es[1:], es[0])
		}), Options{}, ErrManifest, []string{"not manifest.json"}},
		{"file listed but missing", edit(func(es []rawEntry) []rawEntry {
			i := find(t, es, "cni/bin/portmap")
			return append(es[:i], es[i+1:]...)
		}), Options{}, ErrManifest, []string{"cni/bin/portmap is listed in manifest.json but not in the archive"}},
		{"required file missing from manifest", edit(func(es []rawEntry) []rawEntry {
			return withManifest(es, func(m map[string]any) {
				files := m["files"].([]any)
				m["files"] = files[1:] // bin/containerd
			})
		}), Options{}, ErrManifest, []string{"lacks bin/containerd"}},
		{"extra file", edit(func(es []rawEntry) []rawEntry {
			return append(es, reg("bin/evil", "#!/bin/sh\n", 0o755))
		}), Options{}, ErrManifest, []string{"bin/evil is in the archive but not in manifest.json"}},
		{"size differs from manifest", edit(func(es []rawEntry) []rawEntry {
			i := find(t, es, "bin/ctr")
			es[i].body = append(es[i].body, '!')
			return es
		}), Options{}, ErrManifest, []string{"bin/ctr is 20 bytes but manifest.json says 19"}},
		{"mode differs from manifest", edit(func(es []rawEntry) []rawEntry {
			es[find(t, es, "config/containerd.toml")].hdr.Mode = 0o600
			return es
		}), Options{}, ErrManifest, []string{"config/containerd.toml has mode 0600 but manifest.json says 0644"}},
		{"wrong arch", arm, Options{HostArch: "x86_64"}, ErrArch,
			[]string{"for arm64 but this host is amd64 (uname -m: x86_64)", "kube-linux-amd64-v1.37.1.tar.gz"}},
		{"unknown format", edit(func(es []rawEntry) []rawEntry {
			return withManifest(es, func(m map[string]any) { m["formatVersion"] = 2 })
		}), Options{}, ErrFormat, []string{"format 2, newer than the 1"}},
		{"checksum pin mismatch", good, Options{SHA256: strings.Repeat("ab", 32)}, ErrChecksum,
			[]string{"--install-pkg-sha256 is abab", "nothing was unpacked"}},
		{"not gzip", []byte("this is not a gzip file at all"), Options{}, ErrCorrupt, []string{"damaged"}},
		{"corrupt gzip", flip(good, len(good)/2), Options{}, ErrCorrupt, []string{"damaged"}},
		{"corrupt gzip trailer", flip(good, len(good)-6), Options{}, ErrCorrupt, []string{"checksum"}},
		{"truncated", good[:len(good)*2/3], Options{}, ErrCorrupt, []string{"truncated"}},
		{"rewritten valid archive (sanity)", edit(func(es []rawEntry) []rawEntry { return es }), Options{}, nil, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := openArchive(t, tc.archive, tc.opts)
			if tc.class == nil {
				if err != nil {
					t.Fatalf("rewritten valid archive: %v", err)
				}
				return
			}
			wantErr(t, err, tc.class, tc.parts...)
		})
	}
}

func TestOpenTrailingGarbage(t *testing.T) {
	good := buildArchive(t, "amd64", nil)
	es := readEntries(t, good)
	var tarBuf bytes.Buffer
	tw := tar.NewWriter(&tarBuf)
	for _, e := range es {
		h := e.hdr
		tw.WriteHeader(&h)
		tw.Write(e.body)
	}
	tw.Close()
	tarBuf.WriteString("hidden payload")
	_, err := openArchive(t, gzipBytes(t, tarBuf.Bytes()), Options{})
	wantErr(t, err, ErrCorrupt, "after the end of the tar archive")

	// Zero padding, as GNU tar writes up to its record size, is fine.
	tarBuf.Truncate(tarBuf.Len() - len("hidden payload"))
	tarBuf.Write(make([]byte, 10240))
	if _, err := openArchive(t, gzipBytes(t, tarBuf.Bytes()), Options{}); err != nil {
		t.Fatal(err)
	}
}

// TestOpenPinMatches: the pin is accepted with and without "sha256:" and in upper case.
func TestOpenPinMatches(t *testing.T) {
	good := buildArchive(t, "amd64", nil)
	p, err := openArchive(t, good, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, pin := range []string{p.SHA256, "sha256:" + p.SHA256, strings.ToUpper(p.SHA256)} {
		if _, err := openArchive(t, good, Options{SHA256: pin}); err != nil {
			t.Errorf("pin %s: %v", pin, err)
		}
	}
	if _, err := openArchive(t, good, Options{SHA256: "abc"}); err == nil || !strings.Contains(err.Error(), "64 hex digits") {
		t.Errorf("short pin: %v", err)
	}
}

// TestUnpackWritesNothingOutside: whatever the archive tries, nothing appears next to
// the target.
func TestUnpackWritesNothingOutside(t *testing.T) {
	good := buildArchive(t, "amd64", nil)
	es := readEntries(t, good)
	evil := append(es, rawEntry{hdr: tar.Header{Typeflag: tar.TypeReg, Name: "../outside", Mode: 0o644}, body: []byte("x")})
	parent := t.TempDir()
	dest := filepath.Join(parent, "dest")
	os.Mkdir(dest, 0o755)
	_, err := unpack(bytes.NewReader(writeEntries(t, evil)), dest, DefaultLimits, func(*Manifest) error { return nil })
	wantErr(t, err, ErrUnsafe)
	if _, err := os.Lstat(filepath.Join(parent, "outside")); !os.IsNotExist(err) {
		t.Fatalf("file written outside the target: %v", err)
	}
}

func flip(b []byte, i int) []byte {
	c := append([]byte(nil), b...)
	c[i] ^= 0xff
	return c
}

func gzipBytes(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	gz.Write(b)
	gz.Close()
	return buf.Bytes()
}
