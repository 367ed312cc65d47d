package host

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func newTempReal(t *testing.T) (*Real, string) {
	t.Helper()
	root := t.TempDir()
	for _, d := range []string{"etc", "usr/local/bin", "var/lib", "proc/sys/net/ipv4", "sys/module/overlay"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	r := NewReal(DefaultPaths(root))
	r.Exec = func(context.Context, string, ...string) ([]byte, []byte, error) {
		t.Fatal("a test on a temporary root must not run programs")
		return nil, nil, nil
	}
	r.MountInfo = filepath.Join(root, "mountinfo")
	if err := os.WriteFile(r.MountInfo, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	return r, root
}

func TestRealWriteFileAtomicModeAndNoTempLeft(t *testing.T) {
	r, root := newTempReal(t)
	if err := r.WriteFile("/etc/secret", []byte("one"), Private); err != nil {
		t.Fatal(err)
	}
	if err := r.WriteFile("/etc/secret", []byte("two"), File{Mode: 0o640}); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(filepath.Join(root, "etc/secret"))
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o640 {
		t.Fatalf("mode %v, want 0640", st.Mode().Perm())
	}
	if b, _ := r.ReadFile("/etc/secret"); string(b) != "two" {
		t.Fatalf("content %q", b)
	}
	names, _ := r.ReadDir("/etc")
	if len(names) != 1 {
		t.Fatalf("temporary files left behind: %v", names)
	}
}

func TestRealWriteFileNeedsParent(t *testing.T) {
	r, _ := newTempReal(t)
	if err := r.WriteFile("/nope/x", nil, Public); err == nil {
		t.Fatal("wrote into a missing directory")
	}
}

func TestRealRejectsRelativeAndUncleanPaths(t *testing.T) {
	r, _ := newTempReal(t)
	for _, p := range []string{"etc/x", "/etc/../etc/x", "/etc/x/", ""} {
		if err := r.WriteFile(p, nil, Public); err == nil {
			t.Errorf("WriteFile(%q) was accepted", p)
		}
	}
}

func TestRealInstallFileChecksSumBeforeReplacing(t *testing.T) {
	r, root := newTempReal(t)
	src := filepath.Join(t.TempDir(), "kubelet")
	if err := os.WriteFile(src, []byte("binary"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := r.WriteFile("/usr/local/bin/kubelet", []byte("old"), Executable); err != nil {
		t.Fatal(err)
	}
	err := r.InstallFile("/usr/local/bin/kubelet", src, File{Mode: 0o755, SHA256: strings.Repeat("0", 64)})
	if !errors.Is(err, ErrChecksum) {
		t.Fatalf("err = %v, want ErrChecksum", err)
	}
	if b, _ := os.ReadFile(filepath.Join(root, "usr/local/bin/kubelet")); string(b) != "old" {
		t.Fatalf("a failed checksum replaced the file: %q", b)
	}
	sum := sha256.Sum256([]byte("binary"))
	if err := r.InstallFile("/usr/local/bin/kubelet", src, File{Mode: 0o755, SHA256: hex.EncodeToString(sum[:])}); err != nil {
		t.Fatal(err)
	}
	fi, err := r.Lstat("/usr/local/bin/kubelet")
	if err != nil || fi.Kind != KindFile || fi.Mode != 0o755 || fi.Size != 6 {
		t.Fatalf("Lstat = %+v, %v", fi, err)
	}
}

func TestRealMkdirAllSetsModeDespiteUmask(t *testing.T) {
	r, root := newTempReal(t)
	old := syscall.Umask(0o077)
	defer syscall.Umask(old)
	if err := r.MkdirAll("/var/lib/edgeadm/journal", 0o755); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"var/lib/edgeadm", "var/lib/edgeadm/journal"} {
		st, err := os.Stat(filepath.Join(root, d))
		if err != nil || st.Mode().Perm() != 0o755 {
			t.Fatalf("%s: %v, %v", d, st.Mode(), err)
		}
	}
}

func TestRealSymlinkReplaces(t *testing.T) {
	r, _ := newTempReal(t)
	if err := r.WriteFile("/etc/x", []byte("x"), Public); err != nil {
		t.Fatal(err)
	}
	if err := r.Symlink("/usr/local/bin/y", "/etc/x"); err != nil {
		t.Fatal(err)
	}
	fi, err := r.Lstat("/etc/x")
	if err != nil || fi.Kind != KindSymlink || fi.Target != "/usr/local/bin/y" {
		t.Fatalf("Lstat = %+v, %v", fi, err)
	}
}

func TestRealRemoveAllRefusesMountPoints(t *testing.T) {
	r, root := newTempReal(t)
	if err := r.MkdirAll("/var/lib/kubelet/pods/a/volumes/x", 0o755); err != nil {
		t.Fatal(err)
	}
	line := "100 20 0:50 / " + filepath.Join(root, "var/lib/kubelet/pods/a/volumes/x") + " rw - tmpfs tmpfs rw\n"
	if err := os.WriteFile(r.MountInfo, []byte(line), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := r.RemoveAll("/var/lib/kubelet"); err == nil || !strings.Contains(err.Error(), "unmount") {
		t.Fatalf("RemoveAll over a mount point: %v", err)
	}
	if _, err := r.Lstat("/var/lib/kubelet/pods/a/volumes/x"); err != nil {
		t.Fatal("RemoveAll removed something although it refused")
	}
	if err := os.WriteFile(r.MountInfo, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := r.RemoveAll("/var/lib/kubelet"); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Lstat("/var/lib/kubelet"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("still there: %v", err)
	}
	if err := r.RemoveAll("/var/lib/kubelet"); err != nil {
		t.Fatalf("removing what is gone: %v", err)
	}
}

func TestRealSetAndRemoveBlockKeepModeOwnerAndBytes(t *testing.T) {
	r, root := newTempReal(t)
	for name, orig := range oddFiles {
		t.Run(name, func(t *testing.T) {
			abs := filepath.Join(root, "etc/hosts")
			if err := os.WriteFile(abs, []byte(orig), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(abs, 0o604); err != nil {
				t.Fatal(err)
			}
			added := len(orig) > 0 && orig[len(orig)-1] != '\n'
			if err := r.SetBlock("/etc/hosts", HostsMarker, []byte("198.18.1.1 kubernetes.default\n")); err != nil {
				t.Fatal(err)
			}
			fi, _ := r.Lstat("/etc/hosts")
			if fi.Mode != 0o604 {
				t.Fatalf("mode %v after SetBlock", fi.Mode)
			}
			if err := r.RemoveBlock("/etc/hosts", HostsMarker, added); err != nil {
				t.Fatal(err)
			}
			got, _ := os.ReadFile(abs)
			if !bytes.Equal(got, []byte(orig)) {
				t.Fatalf("got %q, want %q", got, orig)
			}
		})
	}
}

func TestRealSetBlockRefusesSymlink(t *testing.T) {
	r, root := newTempReal(t)
	if err := os.Symlink("/run/hosts", filepath.Join(root, "etc/hosts")); err != nil {
		t.Fatal(err)
	}
	if err := r.SetBlock("/etc/hosts", HostsMarker, []byte("x\n")); err == nil {
		t.Fatal("edited through a symlink")
	}
}

func TestRealSysctlAndModulesUnderRoot(t *testing.T) {
	r, root := newTempReal(t)
	if err := os.WriteFile(filepath.Join(root, "proc/sys/net/ipv4/ip_forward"), []byte("0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := r.WriteSysctl("net.ipv4.ip_forward", "1"); err != nil {
		t.Fatal(err)
	}
	if v, err := r.ReadSysctl("net.ipv4.ip_forward"); err != nil || v != "1" {
		t.Fatalf("ReadSysctl = %q, %v", v, err)
	}
	for _, bad := range []string{"../etc/passwd", "net..x", "Net/x", ""} {
		if err := r.WriteSysctl(bad, "1"); err == nil {
			t.Errorf("WriteSysctl(%q) accepted", bad)
		}
	}
	if ok, err := r.ModuleLoaded("overlay"); !ok || err != nil {
		t.Fatalf("overlay: %v, %v", ok, err)
	}
	if ok, err := r.ModuleLoaded("br_netfilter"); ok || err != nil {
		t.Fatalf("br_netfilter: %v, %v", ok, err)
	}
	if _, err := r.ModuleLoaded("../x"); err == nil {
		t.Fatal("bad module name accepted")
	}
}

func TestRealRunPutsOutputInError(t *testing.T) {
	r := NewReal(DefaultPaths("/"))
	r.Exec = func(ctx context.Context, name string, args ...string) ([]byte, []byte, error) {
		return []byte("partial\n"), []byte("Failed to start kubelet.service: Unit not found.\n"), &exec.ExitError{}
	}
	_, err := r.Run(context.Background(), Cmd("systemctl", "start", "kubelet.service"))
	if err == nil || !strings.Contains(err.Error(), "systemctl start kubelet.service") || !strings.Contains(err.Error(), "Unit not found") {
		t.Fatalf("error lacks the command or its output: %v", err)
	}
}

func TestRealUnitStateReadsAnswerDespiteExitCode(t *testing.T) {
	r := NewReal(DefaultPaths("/"))
	r.Exec = func(ctx context.Context, name string, args ...string) ([]byte, []byte, error) {
		switch args[0] {
		case "is-enabled":
			return []byte("disabled\n"), nil, &exec.ExitError{}
		default:
			return nil, nil, &exec.ExitError{} // no output at all
		}
	}
	s, err := r.UnitState(context.Background(), "kubelet.service")
	if err != nil || s != (UnitState{Enabled: "disabled", Active: "inactive"}) {
		t.Fatalf("UnitState = %+v, %v", s, err)
	}
	r.Exec = func(ctx context.Context, name string, args ...string) ([]byte, []byte, error) {
		return nil, nil, exec.ErrNotFound
	}
	if _, err := r.UnitState(context.Background(), "kubelet.service"); err == nil {
		t.Fatal("a missing systemctl must be an error")
	}
}

func TestParseMountInfo(t *testing.T) {
	data := "22 1 8:1 / / rw - ext4 /dev/sda1 rw\n" +
		"40 22 0:5 / /var/lib/kubelet/pods/a\\040b/volumes rw - tmpfs tmpfs rw\n" +
		"bad line\n"
	got := ParseMountInfo([]byte(data))
	want := []string{"/", "/var/lib/kubelet/pods/a b/volumes"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("got %q, want %q", got, want)
	}
}

func TestPathsRel(t *testing.T) {
	p := DefaultPaths("/tmp/root")
	if hp, ok := p.Rel("/tmp/root/var/lib/kubelet"); !ok || hp != "/var/lib/kubelet" {
		t.Fatalf("Rel = %q, %v", hp, ok)
	}
	if _, ok := p.Rel("/tmp/rootother/x"); ok {
		t.Fatal("a sibling of the root counted as under it")
	}
	if hp, ok := DefaultPaths("/").Rel("/x"); !ok || hp != "/x" {
		t.Fatal("Rel under / must be the identity")
	}
}
