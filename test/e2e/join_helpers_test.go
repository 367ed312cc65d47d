package e2e

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/edgeadm/edgeadm/pkg/checksum"
	"github.com/edgeadm/edgeadm/pkg/installpkg"
	"github.com/edgeadm/edgeadm/test/testenv"
)

// Where the tests put things in an edge host: /root is outside what the
// snapshots compare, so copying edgeadm and packages in changes nothing
// they look at.
const (
	edgeadmInHost = "/root/edgeadm"
	pkgInHost     = "/root/kube.tar.gz"
)

// joinRunTimeout bounds one edgeadm run in an edge host (a join waits for
// TLS bootstrap and Node Ready, each bounded by --timeout).
const joinRunTimeout = 8 * time.Minute

// installPackage is the install package built for this machine's arch by
// "make install-pkg" (or named by $EDGEADM_INSTALL_PKG), and its sha256.
func installPackage(t testing.TB) (path, sum string) {
	t.Helper()
	path = os.Getenv("EDGEADM_INSTALL_PKG")
	if path == "" {
		_, self, _, _ := runtime.Caller(0)
		matches, _ := filepath.Glob(filepath.Join(filepath.Dir(self), "..", "..", "_output", "install-pkg", "kube-linux-"+runtime.GOARCH+"-*.tar.gz"))
		if len(matches) == 0 {
			testenv.SkipOrFail(t, "the install package is not built: run \"make install-pkg\" (scripts/install-pkg.sh), or name one with $EDGEADM_INSTALL_PKG")
		}
		sort.Strings(matches)
		path = matches[len(matches)-1]
	}
	data, err := os.ReadFile(path + ".sha256")
	if err != nil {
		testenv.SkipOrFail(t, fmt.Sprintf("the install package %s has no .sha256 next to it: rebuild it with \"make install-pkg\"", path))
	}
	f := strings.Fields(string(data))
	if len(f) == 0 || len(f[0]) != 64 {
		t.Fatalf("%s.sha256 is not a sha256sum line: %q", path, data)
	}
	return path, f[0]
}

// packageManifest reads manifest.json from a package.
func packageManifest(t *testing.T, path string) *installpkg.Manifest {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m, err := installpkg.ReadManifest(f)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// newEdgeHost boots an edge host in c's network, torn down (and checked for
// leftovers) when the test ends, before the cluster.
func newEdgeHost(t *testing.T, c *testenv.Cluster, name string) *testenv.EdgeHost {
	t.Helper()
	return newEdgeHostWith(t, c, name, testenv.EdgeHostOptions{ServiceCIDR: c.Options.ServiceCIDR})
}

// newEdgeHostWith is newEdgeHost with the host's options.
func newEdgeHostWith(t testing.TB, c *testenv.Cluster, name string, opts testenv.EdgeHostOptions) *testenv.EdgeHost {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	h, err := testenv.NewEdgeHost(ctx, c.Net, c.Paths, name, opts)
	if err != nil {
		t.Fatalf("edge host %s: %v", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if t.Failed() {
			for _, u := range []string{"kubelet", "containerd"} {
				out, _, _ := h.Exec(ctx, "journalctl", "-u", u, "--no-pager", "-n", "40")
				t.Logf("%s journal on %s:\n%s", u, h.Name, out)
			}
		}
		if err := h.Teardown(ctx); err != nil {
			t.Errorf("edge host teardown: %v", err)
		}
		if left := h.Leftovers(); len(left) > 0 {
			t.Errorf("edge host teardown left:\n  %s", strings.Join(left, "\n  "))
		}
	})
	nat := ""
	if opts.BehindNAT {
		nat = ", behind NAT"
	}
	t.Logf("edge host %s (%s%s) booted in %s", h.Name, h.IP(), nat, h.BootTime.Round(time.Millisecond))
	return h
}

// hostRun is one edgeadm run inside an edge host.
type hostRun struct {
	Stdout, Stderr string
	Code           int
	// Killed: the process died of SIGKILL.
	Killed bool
}

// edgeadmIn runs edgeadm inside h with extra environment variables.
func edgeadmIn(t testing.TB, h *testenv.EdgeHost, env []string, args ...string) hostRun {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), joinRunTimeout)
	defer cancel()
	argv := append(append([]string{"env"}, env...), edgeadmInHost)
	stdout, stderr, err := h.Exec(ctx, append(argv, args...)...)
	r := hostRun{Stdout: stdout, Stderr: stderr}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		r.Code = ee.ExitCode()
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL {
			r.Killed = true
		}
	case err != nil:
		t.Fatalf("run edgeadm %v in %s: %v", args, h.Name, err)
	}
	return r
}

// fileState is what a snapshot keeps of a path.
type fileState struct {
	Kind   string
	Mode   fs.FileMode
	UID    uint32
	GID    uint32
	Size   int64
	SHA256 string
	Target string
}

// snapshotDirs are the trees compared before a join and after its reset:
// /etc (units included), /usr, /var/lib and /opt.
var snapshotDirs = []string{"/etc", "/usr", "/var/lib", "/opt"}

// runtimeState are paths a running systemd machine changes by itself,
// whatever edgeadm does; they are left out of the comparison (documented in
// docs/join.md): systemd's own state (timer stamps, random seed), apt's and
// logrotate's timers, DynamicUser services' state.
var runtimeState = []string{"/var/lib/systemd", "/var/lib/apt", "/var/lib/logrotate", "/var/lib/private", "/var/lib/dpkg/lock"}

// snapshot walks the machine's trees as the machine sees them (through its
// init's root, so bind mounts inside the machine count) and notes every
// path's kind, mode, owner, size and sha256.
func snapshot(t *testing.T, h *testenv.EdgeHost) map[string]fileState {
	t.Helper()
	root := fmt.Sprintf("/proc/%d/root", h.InitPID())
	snap := map[string]fileState{}
	for _, dir := range snapshotDirs {
		err := filepath.WalkDir(root+dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) {
					return nil
				}
				return err
			}
			rel := strings.TrimPrefix(p, root)
			for _, skip := range runtimeState {
				if rel == skip || strings.HasPrefix(rel, skip+"/") {
					if d.IsDir() {
						return filepath.SkipDir
					}
					return nil
				}
			}
			info, err := d.Info()
			if err != nil {
				return err
			}
			st := fileState{Mode: info.Mode(), Size: info.Size()}
			if sys, ok := info.Sys().(*syscall.Stat_t); ok {
				st.UID, st.GID = sys.Uid, sys.Gid
			}
			switch {
			case d.Type().IsRegular():
				st.Kind = "file"
				sum, err := checksum.File(p)
				if err != nil {
					return err
				}
				st.SHA256 = sum
			case d.IsDir():
				st.Kind, st.Size = "dir", 0
			case d.Type()&fs.ModeSymlink != 0:
				st.Kind = "symlink"
				st.Target, _ = os.Readlink(p)
			default:
				st.Kind = "other"
			}
			snap[rel] = st
			return nil
		})
		if err != nil {
			t.Fatalf("snapshot of %s in %s: %v", dir, h.Name, err)
		}
	}
	return snap
}

// sameSnapshot fails the test with every difference between two snapshots.
func sameSnapshot(t *testing.T, what string, before, after map[string]fileState) {
	t.Helper()
	var diff []string
	for p, b := range before {
		a, ok := after[p]
		switch {
		case !ok:
			diff = append(diff, "- "+p+" ("+b.Kind+")")
		case a != b:
			diff = append(diff, fmt.Sprintf("~ %s: %+v -> %+v", p, b, a))
		}
	}
	for p, a := range after {
		if _, ok := before[p]; !ok {
			diff = append(diff, "+ "+p+" ("+a.Kind+")")
		}
	}
	if len(diff) > 0 {
		slices.Sort(diff)
		if len(diff) > 60 {
			diff = append(diff[:60], fmt.Sprintf("... and %d more", len(diff)-60))
		}
		t.Fatalf("%s: the host differs from before the join:\n  %s", what, strings.Join(diff, "\n  "))
	}
}

// rewriteArchive copies the package archive src to dst, letting edit change
// (or drop) each entry, and then appending extra entries.
func rewriteArchive(t *testing.T, src, dst string, edit func(h *tar.Header, data []byte) ([]byte, bool), extra ...func(tw *tar.Writer)) {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	gz, err := gzip.NewReader(in)
	if err != nil {
		t.Fatal(err)
	}
	out, err := os.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	zw := gzip.NewWriter(out)
	tw := tar.NewWriter(zw)
	tr := tar.NewReader(gz)
	first := true
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		data, keep := edit(h, data)
		if !keep {
			continue
		}
		h.Size = int64(len(data))
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(data); err != nil {
			t.Fatal(err)
		}
		if first {
			// Extra entries go right after manifest.json, before any file.
			for _, x := range extra {
				x(tw)
			}
			first = false
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
}

// keepAll is an edit that changes nothing.
func keepAll(_ *tar.Header, data []byte) ([]byte, bool) { return data, true }

// editManifest changes manifest.json's JSON.
func editManifest(change func(m map[string]any)) func(*tar.Header, []byte) ([]byte, bool) {
	return func(h *tar.Header, data []byte) ([]byte, bool) {
		if h.Name != installpkg.ManifestName {
			return data, true
		}
		var m map[string]any
		if err := json.Unmarshal(data, &m); err != nil {
			panic(err)
		}
		change(m)
		out, _ := json.MarshalIndent(m, "", "  ")
		return append(out, '\n'), true
	}
}

// joinReport is edgeadm join -o json's output.
type joinReport struct {
	NodeName      string  `json:"nodeName"`
	Server        string  `json:"server"`
	AlreadyJoined bool    `json:"alreadyJoined"`
	Resumed       bool    `json:"resumed"`
	Succeeded     bool    `json:"succeeded"`
	Duration      float64 `json:"durationSeconds"`
	Phases        []struct {
		Name     string  `json:"name"`
		Status   string  `json:"status"`
		Duration float64 `json:"durationSeconds"`
	} `json:"phases"`
	Warnings []string `json:"warnings"`
}

func parseReport(t *testing.T, r hostRun) joinReport {
	t.Helper()
	var rep joinReport
	if err := json.Unmarshal([]byte(r.Stdout), &rep); err != nil {
		t.Fatalf("join -o json printed no report (%v): %q\nstderr:\n%s", err, r.Stdout, r.Stderr)
	}
	return rep
}

// phaseShares is a one-line benchmark of a join: its wall time and each
// phase's share of it.
func phaseShares(rep joinReport) string {
	var b bytes.Buffer
	fmt.Fprintf(&b, "join took %.1fs:", rep.Duration)
	for _, p := range rep.Phases {
		if p.Duration >= 0.05 {
			fmt.Fprintf(&b, " %s %.1fs (%.0f%%)", p.Name, p.Duration, 100*p.Duration/rep.Duration)
		}
	}
	return b.String()
}
