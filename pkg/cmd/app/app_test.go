package app

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/klog/v2"
	"sigs.k8s.io/yaml"

	"github.com/edgeadm/edgeadm/pkg/cmd"
	"github.com/edgeadm/edgeadm/pkg/cmd/exitcode"
	"github.com/edgeadm/edgeadm/pkg/version"
)

// run runs edgeadm in-process with buffers for its streams.
func run(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := Run(cmd.IOStreams{In: strings.NewReader(""), Out: &out, ErrOut: &errOut}, args)
	return out.String(), errOut.String(), exitcode.Code(err)
}

func TestVersion(t *testing.T) {
	want := version.Get()
	tests := []struct {
		name  string
		args  []string
		parse func([]byte, any) error // nil: the human form
	}{
		{"human", []string{"version"}, nil},
		{"json", []string{"version", "-o", "json"}, json.Unmarshal},
		{"json long flag", []string{"version", "--output=json"}, json.Unmarshal},
		{"yaml", []string{"version", "-o", "yaml"}, func(b []byte, v any) error { return yaml.UnmarshalStrict(b, v) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stdout, stderr, code := run(t, tt.args...)
			if code != exitcode.OK || stderr != "" {
				t.Fatalf("exit %d, stderr %q; want 0 and nothing", code, stderr)
			}
			if tt.parse == nil {
				if stdout != want.String()+"\n" {
					t.Errorf("stdout = %q, want %q", stdout, want.String()+"\n")
				}
				return
			}
			var got version.Info
			if err := tt.parse([]byte(stdout), &got); err != nil {
				t.Fatalf("parse %q: %v", stdout, err)
			}
			if got != want {
				t.Errorf("printed %+v, want %+v", got, want)
			}
		})
	}
}

func TestVersionHumanFormIsShort(t *testing.T) {
	stdout, _, _ := run(t, "version")
	if n := strings.Count(stdout, "\n"); n != 1 {
		t.Errorf("human form has %d lines, want 1: %q", n, stdout)
	}
	// Test binaries carry no module list, so the Kubernetes version is
	// checked on the built binary (cmd/edgeadm).
	for _, s := range []string{"edgeadm ", " kubernetes ", "go1."} {
		if !strings.Contains(stdout, s) {
			t.Errorf("human form %q does not contain %q", stdout, s)
		}
	}
}

// Every command that talks to the cluster fails cleanly, before doing
// anything, when no kubeconfig can be found: one line that names the fix.
func TestClusterCommandsWithoutKubeconfig(t *testing.T) {
	t.Setenv("KUBECONFIG", filepath.Join(t.TempDir(), "missing.conf"))
	for _, args := range [][]string{
		{"addon", "edge-apps", "--master-public-addr", "203.0.113.10:6443"},
		{"detach", "edge-apps", "--force"},
		{"token", "create", "--print-join-command", "--ttl", "1h", "--master-public-addr", "203.0.113.10:6443"},
		{"token", "list", "-o", "json"},
		{"token", "delete", "abcdef"},
		{"--kubeconfig", "/nonexistent", "token", "list"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			stdout, stderr, code := run(t, args...)
			if code != exitcode.Failure {
				t.Errorf("exit %d, want %d", code, exitcode.Failure)
			}
			if !strings.HasPrefix(stderr, "error: ") || strings.Count(stderr, "\n") != 1 || !strings.Contains(stderr, "kubeconfig") {
				t.Errorf("stderr = %q, want one error line about the kubeconfig", stderr)
			}
			if stdout != "" {
				t.Errorf("stdout = %q, want nothing", stdout)
			}
		})
	}
}

func TestUsageErrors(t *testing.T) {
	tests := []struct {
		args    []string
		wantHas string // part of the message naming what was wrong
		helpFor string // command whose --help the hint names
	}{
		{[]string{"--bogus"}, "unknown flag: --bogus", "edgeadm"},
		{[]string{"version", "--bogus"}, "unknown flag: --bogus", "edgeadm version"},
		{[]string{"join", "203.0.113.10:6443", "-x"}, "unknown shorthand flag: 'x'", "edgeadm join"},
		{[]string{"tokne"}, `unknown command "tokne" for "edgeadm" (did you mean "token"?)`, "edgeadm"},
		{[]string{"token", "creat"}, `unknown command "creat" for "edgeadm token" (did you mean "create"?)`, "edgeadm token"},
		{[]string{"version", "extra"}, `unknown command "extra"`, "edgeadm version"},
		{[]string{"version", "-o", "xml"}, `invalid output format "xml": use one of: json, yaml`, "edgeadm version"},
		{[]string{"version", "-o"}, "flag needs an argument", "edgeadm version"},
		{[]string{"token", "list", "-o", "wide"}, `invalid output format "wide"`, "edgeadm token list"},
		{[]string{"addon", "edge-apps", "-o", "table"}, `invalid output format "table"`, "edgeadm addon edge-apps"},
		{[]string{"join"}, "expected one argument, the API server address", "edgeadm join"},
		{[]string{"join", "a:1", "b:2"}, "got 2", "edgeadm join"},
		{[]string{"token", "delete"}, "requires at least 1 arg", "edgeadm token delete"},
		{[]string{"token", "create", "--ttl", "soon"}, `invalid argument "soon" for "--ttl" flag`, "edgeadm token create"},
		{[]string{"reset", "now"}, `unknown command "now"`, "edgeadm reset"},
		{[]string{"completion"}, "accepts 1 arg(s), received 0", "edgeadm completion"},
		{[]string{"completion", "tcsh"}, `unsupported shell "tcsh": use one of: bash, zsh, fish`, "edgeadm completion"},
		{[]string{"-v", "loud", "version"}, `invalid argument "loud" for "-v, --v" flag`, "edgeadm version"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			stdout, stderr, code := run(t, tt.args...)
			if code != exitcode.Usage {
				t.Errorf("exit %d, want %d", code, exitcode.Usage)
			}
			if stdout != "" {
				t.Errorf("stdout = %q, want nothing", stdout)
			}
			if !strings.HasPrefix(stderr, "error: ") || strings.Count(stderr, "\n") != 1 {
				t.Errorf("stderr = %q, want one line starting with \"error: \"", stderr)
			}
			if !strings.Contains(stderr, tt.wantHas) {
				t.Errorf("stderr = %q, want it to contain %q", stderr, tt.wantHas)
			}
			if hint := "run '" + tt.helpFor + " --help' for usage"; !strings.HasSuffix(stderr, hint+"\n") {
				t.Errorf("stderr = %q, want it to end with %q", stderr, hint)
			}
		})
	}
}

func TestHelp(t *testing.T) {
	tests := [][]string{
		{},
		{"--help"},
		{"-h"},
		{"help", "join"},
		{"token"},
		{"addon"},
		{"join", "--help"},
	}
	for _, args := range tests {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			stdout, stderr, code := run(t, args...)
			if code != exitcode.OK || stderr != "" {
				t.Errorf("exit %d, stderr %q; want 0 and nothing", code, stderr)
			}
			if !strings.Contains(stdout, "Usage:") {
				t.Errorf("stdout does not show help: %q", stdout)
			}
		})
	}
}

func TestCompletion(t *testing.T) {
	tests := []struct {
		shell string
		want  string
	}{
		{"bash", "__start_edgeadm"},
		{"zsh", "#compdef edgeadm"},
		{"fish", "complete -c edgeadm"},
	}
	for _, tt := range tests {
		t.Run(tt.shell, func(t *testing.T) {
			stdout, stderr, code := run(t, "completion", tt.shell)
			if code != exitcode.OK || stderr != "" {
				t.Fatalf("exit %d, stderr %q; want 0 and nothing", code, stderr)
			}
			if !strings.Contains(stdout, tt.want) {
				t.Errorf("%s script does not contain %q", tt.shell, tt.want)
			}
		})
	}
}

// The completion scripts call back into "edgeadm __complete"; it must know
// the commands and their flags.
func TestCompletionCallback(t *testing.T) {
	tests := []struct {
		args []string
		want []string
	}{
		{[]string{"__complete", ""}, []string{"addon", "detach", "join", "reset", "token", "version", "completion"}},
		{[]string{"__complete", "token", ""}, []string{"create", "list", "delete"}},
		{[]string{"__complete", "completion", ""}, []string{"bash", "zsh", "fish"}},
		{[]string{"__complete", "join", "--dis"}, []string{"--discovery-token-ca-cert-hash", "--discovery-token-unsafe-skip-ca-verification"}},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			stdout, _, code := run(t, tt.args...)
			if code != exitcode.OK {
				t.Fatalf("exit %d", code)
			}
			for _, w := range tt.want {
				if !strings.Contains(stdout, w+"\t") && !strings.Contains(stdout, w+"\n") {
					t.Errorf("completions %q lack %q", stdout, w)
				}
			}
		})
	}
}

func TestVerbosityFlag(t *testing.T) {
	tests := []struct {
		args []string
		want klog.Level
	}{
		{[]string{"-v", "4", "version"}, 4},
		{[]string{"version", "--v=2"}, 2},
		{[]string{"version", "-v3"}, 3},
		// Each run starts from the default, whatever the last one set.
		{[]string{"version"}, 0},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			if _, stderr, code := run(t, tt.args...); code != exitcode.OK {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			if !klog.V(tt.want).Enabled() || klog.V(tt.want+1).Enabled() {
				t.Errorf("klog verbosity is not %d after %v", tt.want, tt.args)
			}
		})
	}
}

func TestLogsGoToTheCommandsStderr(t *testing.T) {
	var buf bytes.Buffer
	restore := logTo(&buf)
	klog.Info("classic")
	klog.InfoS("structured", "key", "value")
	klog.Background().Info("contextual")
	restore()
	for _, want := range []string{"classic", `"structured" key="value"`, "contextual"} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("log output %q lacks %q", buf.String(), want)
		}
	}
}

// Running edgeadm writes nothing it was not asked to: no log files, no
// completion files, no caches, in $HOME, $TMPDIR or the working directory.
func TestNoFilesWritten(t *testing.T) {
	home, tmp, work := t.TempDir(), t.TempDir(), t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("TMPDIR", tmp)
	t.Setenv("KUBECONFIG", "")
	t.Setenv("XDG_CACHE_HOME", "")
	t.Setenv("XDG_CONFIG_HOME", "")
	t.Chdir(work)
	for _, args := range [][]string{
		{},
		{"--help"},
		{"-v", "9", "version"},
		{"version", "-o", "yaml"},
		{"completion", "bash"},
		{"completion", "zsh"},
		{"completion", "fish"},
		{"__complete", "join", "--"},
		{"addon", "edge-apps", "--dry-run"},
		{"token", "list"},
		{"join", "203.0.113.10:6443"},
		// --dry-run: a unit test must never be able to reset the machine it runs on.
		{"reset", "--dry-run"},
		{"--bogus"},
	} {
		run(t, args...)
	}
	for _, dir := range []string{home, tmp, work} {
		assertEmpty(t, dir)
	}
}

func assertEmpty(t *testing.T, dir string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		t.Errorf("edgeadm wrote %s", filepath.Join(dir, e.Name()))
	}
}
