package reset

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"

	"github.com/edgeadm/edgeadm/pkg/cmd"
	"github.com/edgeadm/edgeadm/pkg/cmd/exitcode"
	"github.com/edgeadm/edgeadm/pkg/host"
	"github.com/edgeadm/edgeadm/pkg/journal"
)

// joined is a fake host with a small recorded join on it.
func joined(t *testing.T) (f *host.Fake, before host.FakeState) {
	t.Helper()
	f = host.NewFake()
	before = f.State()
	j, err := journal.Open(f)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := j.Begin("join", map[string]string{"endpoint": "198.18.1.1:6443", "nodeName": "edge-7"}); err != nil {
		t.Fatal(err)
	}
	for _, err := range []error{
		j.SetBlock("/etc/hosts", host.HostsMarker, []byte("198.18.1.1 kubernetes.default\n")),
		j.WriteSysctl("net.ipv4.ip_forward", "1"),
		j.MkdirAll("/etc/kubernetes", 0o755),
		j.WriteFile("/etc/kubernetes/bootstrap-kubelet.conf", []byte("secret"), host.Private),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	f.PutDir("/var/tmp/.edgeadm-pkg-123/root") // a killed join's package copy
	return f, before
}

func run(t *testing.T, f *host.Fake, in io.Reader, terminal bool, euid int, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errOut bytes.Buffer
	c := NewCommandWith(cmd.IOStreams{In: in, Out: &out, ErrOut: &errOut},
		Deps{Host: f, Euid: func() int { return euid }, IsTerminal: func(io.Reader) bool { return terminal }})
	c.SetArgs(args)
	c.SilenceErrors, c.SilenceUsage = true, true
	err := c.ExecuteContext(context.Background())
	if err != nil {
		errOut.WriteString("error: " + err.Error() + "\n")
	}
	return out.String(), errOut.String(), exitcode.Code(err)
}

func TestResetForceUndoesEverything(t *testing.T) {
	f, before := joined(t)
	stdout, stderr, code := run(t, f, nil, false, 0, "-f")
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	before.Files["/var/tmp"] = f.State().Files["/var/tmp"]
	if d := f.State().Diff(before); len(d) > 0 {
		t.Fatalf("host differs:\n%s", strings.Join(d, "\n"))
	}
	for _, want := range []string{"remove the \"# BEGIN edgeadm\" block from /etc/hosts", "remove /var/tmp/.edgeadm-pkg-123", "remove /var/lib/edgeadm"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
	if !strings.Contains(stdout, `kubectl delete node edge-7`) {
		t.Errorf("stdout %q", stdout)
	}
}

func TestResetWithoutTerminalRefusesUnlessForced(t *testing.T) {
	f, _ := joined(t)
	n := f.Mutations()
	_, stderr, code := run(t, f, strings.NewReader("y\n"), false, 0)
	if code != exitcode.Refused || !strings.Contains(stderr, "-f (--force)") {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	if f.Mutations() != n {
		t.Fatal("a refused reset changed the host")
	}
}

func TestResetAsksOnATerminal(t *testing.T) {
	f, before := joined(t)
	n := f.Mutations()
	_, stderr, code := run(t, f, strings.NewReader("n\n"), true, 0)
	if code != exitcode.Refused || !strings.Contains(stderr, "Undo the join on this host? [y/N]") || !strings.Contains(stderr, "aborted") {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	if f.Mutations() != n {
		t.Fatal("an aborted reset changed the host")
	}
	if _, stderr, code = run(t, f, strings.NewReader("yes\n"), true, 0); code != 0 {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	before.Files["/var/tmp"] = f.State().Files["/var/tmp"]
	if d := f.State().Diff(before); len(d) > 0 {
		t.Fatalf("host differs:\n%s", strings.Join(d, "\n"))
	}
}

func TestResetDryRunChangesNothing(t *testing.T) {
	f, _ := joined(t)
	n := f.Mutations()
	stdout, stderr, code := run(t, f, nil, false, 0, "--dry-run")
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	if f.Mutations() != n {
		t.Fatalf("dry run changed the host: %v", f.Log()[n:])
	}
	for _, want := range []string{"[dry-run] would remove /etc/kubernetes/bootstrap-kubelet.conf", "[dry-run] would set sysctl net.ipv4.ip_forward=0", "[dry-run] would remove /var/tmp/.edgeadm-pkg-123"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
	if !strings.Contains(stdout, "Dry run: nothing was changed") {
		t.Errorf("stdout %q", stdout)
	}
}

func TestResetNotRootChangesNothing(t *testing.T) {
	f, _ := joined(t)
	n := f.Mutations()
	_, stderr, code := run(t, f, nil, false, 1000, "-f")
	if code != exitcode.PreflightFailed || !strings.Contains(stderr, "run it as root") || f.Mutations() != n {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
}

func TestResetOnACleanHost(t *testing.T) {
	f := host.NewFake()
	stdout, _, code := run(t, f, nil, false, 0, "-f")
	if code != 0 || !strings.Contains(stdout, "Nothing to reset") || f.Mutations() != 0 {
		t.Fatalf("exit %d, %q, %v", code, stdout, f.Log())
	}
}

func TestResetReportsFailuresAndContinues(t *testing.T) {
	f, _ := joined(t)
	f.Fail = func(op, arg string) error {
		if op == "WriteSysctl" {
			return io.ErrClosedPipe
		}
		return nil
	}
	_, stderr, code := run(t, f, nil, false, 0, "-f")
	if code != exitcode.Failure || !strings.Contains(stderr, "FAILED") || !strings.Contains(stderr, "run \"edgeadm reset\" again") {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	if hosts, _ := f.File("/etc/hosts"); strings.Contains(string(hosts), "edgeadm") {
		t.Error("the steps after the failed one were not run")
	}
	f.Fail = nil
	if _, stderr, code := run(t, f, nil, false, 0, "-f"); code != 0 {
		t.Fatalf("second reset: exit %d\n%s", code, stderr)
	}
	if _, err := f.Lstat("/var/lib/edgeadm"); err == nil {
		t.Error("/var/lib/edgeadm is still there")
	}
}
