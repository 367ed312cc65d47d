package host

import (
	"bytes"
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// treeOf lists every path under root with its mode and content.
func treeOf(t *testing.T, root string) string {
	t.Helper()
	var b strings.Builder
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		b.WriteString(p + " " + info.Mode().String())
		if d.Type().IsRegular() {
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			b.Write(data)
		}
		b.WriteByte('\n')
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func TestDryRunChangesNothingAndSaysWhatItWould(t *testing.T) {
	r, root := newTempReal(t)
	if err := os.WriteFile(filepath.Join(root, "etc/hosts"), []byte("127.0.0.1 localhost\n# BEGIN edgeadm\nx\n# END edgeadm\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	before := treeOf(t, root)
	var out bytes.Buffer
	d := NewDryRun(r, &out)
	ctx := context.Background()
	src := filepath.Join(t.TempDir(), "src")
	if err := os.WriteFile(src, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	steps := []error{
		d.WriteFile("/etc/kubernetes.conf", []byte("x"), Private),
		d.InstallFile("/usr/local/bin/kubelet", src, Executable),
		d.MkdirAll("/var/lib/edgeadm", 0o700),
		d.Remove("/etc/hosts"),
		d.RemoveAll("/etc"),
		d.Symlink("/a", "/etc/b"),
		d.SetBlock("/etc/hosts", HostsMarker, []byte("1.2.3.4 kubernetes.default\n")),
		d.RemoveBlock("/etc/hosts", HostsMarker, false),
		d.Systemctl(ctx, Start, "kubelet.service"),
		d.Systemctl(ctx, DaemonReload, ""),
		d.WriteSysctl("net.ipv4.ip_forward", "1"),
		d.LoadModule(ctx, "br_netfilter"),
		d.UnloadModule(ctx, "br_netfilter"),
		d.Unmount("/var/lib/kubelet/x"),
		d.Residue(ctx, Residue{Kind: ResidueDir, Path: "/var/lib/kubelet"}),
	}
	if _, err := d.Run(ctx, Cmd("ctr", "images", "import", "x.tar")); err != nil {
		t.Fatal(err)
	}
	for i, err := range steps {
		if err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
	}
	if after := treeOf(t, root); after != before {
		t.Fatalf("dry run changed the tree:\n%s\n---\n%s", before, after)
	}
	for _, want := range []string{
		"[dry-run] would write /etc/kubernetes.conf (1 bytes, mode 0600, owner 0:0)",
		"[dry-run] would run systemctl start kubelet.service",
		"[dry-run] would remove the \"# BEGIN edgeadm\" block from /etc/hosts",
		"[dry-run] would run ctr images import x.tar",
		"[dry-run] would set sysctl net.ipv4.ip_forward=1",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	if len(d.Actions()) != 16 {
		t.Errorf("%d actions recorded, want 16: %q", len(d.Actions()), d.Actions())
	}
	// Nothing to do is not printed.
	out.Reset()
	_ = d.Remove("/does/not/exist")
	_ = d.MkdirAll("/etc", 0o755)
	if out.Len() != 0 {
		t.Fatalf("printed a no-op: %q", out.String())
	}
}

func TestFakeEnforcesParentsUnitsAndKill(t *testing.T) {
	f := NewFake()
	ctx := context.Background()
	if err := f.WriteFile("/etc/kubernetes/x", nil, Public); err == nil {
		t.Fatal("fake wrote into a missing directory")
	}
	if err := f.Systemctl(ctx, Start, "kubelet.service"); err == nil {
		t.Fatal("fake started a unit without a unit file")
	}
	if err := f.WriteFile("/etc/systemd/system/kubelet.service", []byte("[Unit]\n"), Public); err != nil {
		t.Fatal(err)
	}
	if s, _ := f.UnitState(ctx, "kubelet.service"); s.IsEnabled() || s.IsActive() || s.Enabled != "disabled" {
		t.Fatalf("new unit state %+v", s)
	}
	f.KillAfter(1)
	if err := f.Systemctl(ctx, Enable, "kubelet.service"); err != nil {
		t.Fatal(err)
	}
	if err := f.Systemctl(ctx, Start, "kubelet.service"); err == nil {
		t.Fatal("mutation after the kill succeeded")
	}
	if s, _ := f.UnitState(ctx, "kubelet.service"); !s.IsEnabled() || s.IsActive() {
		t.Fatalf("state after kill %+v", s)
	}
	f.KillAfter(-1)
	if err := f.Systemctl(ctx, Disable, "kubelet.service"); err != nil {
		t.Fatal(err)
	}
	if err := f.Remove("/etc/systemd/system/kubelet.service"); err != nil {
		t.Fatal(err)
	}
	if s, _ := f.UnitState(ctx, "kubelet.service"); s.Enabled != "not-found" {
		t.Fatalf("state after removal %+v", s)
	}
}
