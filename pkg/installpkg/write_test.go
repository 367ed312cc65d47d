package installpkg

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestWriteArchiveReproducible: the same staged content gives the same bytes, whatever
// the files' mtimes, the permission bits beyond "executable or not", or the order they
// were written in.
func TestWriteArchiveReproducible(t *testing.T) {
	a, b := t.TempDir(), t.TempDir()
	stageTree(t, a, map[string]string{"images/zz.tar": "z", "bin/edgehub": "e", "systemd/edgehub.service": "u"})
	stageTree(t, b, map[string]string{"systemd/edgehub.service": "u", "bin/edgehub": "e", "images/zz.tar": "z"})
	old := time.Unix(12345, 0)
	filepath.Walk(b, func(p string, info os.FileInfo, err error) error {
		os.Chtimes(p, old, old)
		if info.Mode().IsRegular() {
			os.Chmod(p, info.Mode().Perm()&^0o044|0o600) // 0755 -> 0711, 0644 -> 0600
		}
		return nil
	})
	pack := func(dir string) []byte {
		var buf bytes.Buffer
		if _, err := WriteArchive(&buf, testInput(dir, "amd64")); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}
	pa, pb := pack(a), pack(b)
	if sha256.Sum256(pa) != sha256.Sum256(pb) {
		t.Fatal("same content, different archives")
	}

	es := readEntries(t, pa)
	var names []string
	for _, e := range es {
		names = append(names, e.hdr.Name)
		if e.hdr.Uid != 0 || e.hdr.Gid != 0 || !e.hdr.ModTime.Equal(time.Unix(0, 0)) || e.hdr.Uname != "root" {
			t.Errorf("%s: uid %d gid %d mtime %v uname %q", e.hdr.Name, e.hdr.Uid, e.hdr.Gid, e.hdr.ModTime, e.hdr.Uname)
		}
		want := int64(0o644)
		if e.hdr.Typeflag == tar.TypeDir || isExecutablePath(e.hdr.Name) {
			want = 0o755
		}
		if e.hdr.Mode != want {
			t.Errorf("%s: mode %o, want %o", e.hdr.Name, e.hdr.Mode, want)
		}
	}
	if names[0] != ManifestName || names[1] != "bin/" || names[2] != "bin/containerd" {
		t.Errorf("entries start %v", names[:3])
	}
	for i := 2; i < len(names); i++ {
		if names[i-1] >= names[i] {
			t.Errorf("entries not sorted: %s before %s", names[i-1], names[i])
		}
	}
	m, err := ParseManifest(es[0].body)
	if err != nil {
		t.Fatal(err)
	}
	if f := m.File("bin/edgehub"); f == nil || f.Mode != 0o755 || f.Size != 1 {
		t.Errorf("bin/edgehub in manifest: %+v", f)
	}
	if rm, err := ReadManifest(bytes.NewReader(pa)); err != nil || rm.Arch != "amd64" || len(rm.Files) != len(m.Files) {
		t.Errorf("ReadManifest: %+v, %v", rm, err)
	}
	if !strings.Contains(string(es[0].body), `"mode": "0755"`) {
		t.Errorf("modes are not octal strings:\n%s", es[0].body)
	}
}

func TestWriteArchiveRefuses(t *testing.T) {
	dir := t.TempDir()
	stageTree(t, dir, nil)
	var buf bytes.Buffer
	os.Symlink("kubelet", filepath.Join(dir, "bin", "link"))
	_, err := WriteArchive(&buf, testInput(dir, "amd64"))
	if err == nil || !strings.Contains(err.Error(), "bin/link is a symlink") {
		t.Errorf("symlink staged: %v", err)
	}
	os.Remove(filepath.Join(dir, "bin", "link"))
	os.Remove(filepath.Join(dir, "bin", "runc"))
	_, err = WriteArchive(&buf, testInput(dir, "amd64"))
	wantErr(t, err, ErrManifest, "lacks bin/runc")
	_, err = WriteArchive(&buf, testInput(dir, "x86_64"))
	wantErr(t, err, ErrManifest, `arch "x86_64"`)
}

func TestParseManifestErrors(t *testing.T) {
	good := readEntries(t, buildArchive(t, "amd64", nil))[0].body
	edit := func(f func(m map[string]any)) []byte {
		var m map[string]any
		json.Unmarshal(good, &m)
		f(m)
		b, _ := json.Marshal(m)
		return b
	}
	file := func(m map[string]any, i int) map[string]any { return m["files"].([]any)[i].(map[string]any) }
	tests := []struct {
		name  string
		data  []byte
		class error
		want  string
	}{
		{"not json", []byte("{"), ErrManifest, "not valid JSON"},
		{"no format", edit(func(m map[string]any) { delete(m, "formatVersion") }), ErrManifest, "no formatVersion"},
		{"old format", edit(func(m map[string]any) { m["formatVersion"] = 0 }), ErrFormat, "rebuild the package"},
		{"unknown field", edit(func(m map[string]any) { m["extra"] = 1 }), ErrManifest, `unknown field "extra"`},
		{"trailing data", append(append([]byte{}, good...), []byte("{}")...), ErrManifest, "not valid JSON"},
		{"bad version", edit(func(m map[string]any) { m["kubernetesVersion"] = "1.37" }), ErrManifest, "kubernetesVersion"},
		{"bad sha", edit(func(m map[string]any) { file(m, 0)["sha256"] = "ABC" }), ErrManifest, "64 lower-case hex"},
		{"bad mode", edit(func(m map[string]any) { file(m, 0)["mode"] = "755" }), ErrManifest, "octal string"},
		{"setuid in manifest", edit(func(m map[string]any) { file(m, 0)["mode"] = "4755" }), ErrManifest, "octal string"},
		{"writable mode", edit(func(m map[string]any) { file(m, 0)["mode"] = "0775" }), ErrManifest, "writable by group"},
		{"not executable", edit(func(m map[string]any) { file(m, 0)["mode"] = "0644" }), ErrManifest, "not executable"},
		{"dot-dot path", edit(func(m map[string]any) { file(m, 0)["path"] = "../bin/containerd" }), ErrManifest, `".."`},
		{"unclean path", edit(func(m map[string]any) { file(m, 0)["path"] = "bin//containerd" }), ErrManifest, "not clean"},
		{"duplicate", edit(func(m map[string]any) { file(m, 1)["path"] = "bin/containerd" }), ErrManifest, "twice"},
		{"file as dir", edit(func(m map[string]any) {
			m["files"] = append(m["files"].([]any), map[string]any{"path": "bin/kubelet/x", "sha256": strings.Repeat("0", 64), "mode": "0644", "size": 0})
		}), ErrManifest, "needs it to be a directory"},
		{"lists itself", edit(func(m map[string]any) { file(m, 0)["path"] = ManifestName }), ErrManifest, "lists itself"},
		{"edgehub without unit", edit(func(m map[string]any) {
			m["files"] = append(m["files"].([]any), map[string]any{"path": "bin/edgehub", "sha256": strings.Repeat("0", 64), "mode": "0755", "size": 0})
		}), ErrManifest, "edgehub needs both"},
		{"image not a file", edit(func(m map[string]any) { m["images"] = []any{map[string]any{"path": "images/x.tar", "ref": "x"}} }), ErrManifest, "not a file"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseManifest(tc.data)
			wantErr(t, err, tc.class, tc.want)
		})
	}
}

func TestPackageName(t *testing.T) {
	if got := PackageName("arm64", "v1.37.1"); got != "kube-linux-arm64-v1.37.1.tar.gz" {
		t.Errorf("PackageName = %q", got)
	}
}
