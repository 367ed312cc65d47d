package main

import (
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

const versionPkg = "github.com/edgeadm/edgeadm/pkg/version"

// build compiles edgeadm into dir with the given -ldflags.
func build(t *testing.T, dir, ldflags string) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the binary; skipped with -short")
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("no go tool: %v", err)
	}
	bin := filepath.Join(dir, "edgeadm")
	out, err := exec.Command(goTool, "build", "-ldflags", ldflags, "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

type result struct {
	stdout, stderr string
	code           int
}

// runIn runs bin with args in an environment that has only PATH, HOME and
// TMPDIR, from the working directory work.
func runIn(t *testing.T, bin, home, tmp, work string, args ...string) result {
	t.Helper()
	c := exec.Command(bin, args...)
	c.Dir = work
	c.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + home, "TMPDIR=" + tmp}
	var stdout, stderr strings.Builder
	c.Stdout, c.Stderr = &stdout, &stderr
	err := c.Run()
	code := 0
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) {
		code = exitErr.ExitCode()
	} else if err != nil {
		t.Fatalf("run %v: %v", args, err)
	}
	return result{stdout.String(), stderr.String(), code}
}

type versionInfo struct {
	Version           string `json:"version"`
	GitCommit         string `json:"gitCommit"`
	KubernetesVersion string `json:"kubernetesVersion"`
}

// The -X paths here are the ones the Makefile uses; this test pins them.
func TestVersionStamping(t *testing.T) {
	bin := build(t, t.TempDir(), strings.Join([]string{
		"-X " + versionPkg + ".Version=v0.1.0-test",
		"-X " + versionPkg + ".GitCommit=0123abcd",
		"-X " + versionPkg + ".KubernetesVersion=v1.99.0",
	}, " "))
	dir := t.TempDir()
	r := runIn(t, bin, dir, dir, dir, "version", "-o", "json")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	var got versionInfo
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
		t.Fatalf("parse %q: %v", r.stdout, err)
	}
	want := versionInfo{Version: "v0.1.0-test", GitCommit: "0123abcd", KubernetesVersion: "v1.99.0"}
	if got != want {
		t.Errorf("version = %+v, want %+v", got, want)
	}
}

// Without -ldflags the Kubernetes library version comes from the module
// list the toolchain embeds in the binary.
func TestVersionFromBuildInfo(t *testing.T) {
	bin := build(t, t.TempDir(), "")
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Version}}", "k8s.io/kubernetes").Output()
	if err != nil {
		t.Fatalf("go list -m k8s.io/kubernetes: %v", err)
	}
	dir := t.TempDir()
	r := runIn(t, bin, dir, dir, dir, "version")
	if want := " kubernetes " + strings.TrimSpace(string(out)) + " "; !strings.Contains(r.stdout, want) {
		t.Errorf("version = %q, want it to contain %q", r.stdout, want)
	}
}

// The real process: exit codes from main, and nothing written to $HOME,
// $TMPDIR or the working directory by any command.
func TestBinary(t *testing.T) {
	bin := build(t, t.TempDir(), "")
	home, tmp, work := t.TempDir(), t.TempDir(), t.TempDir()
	tests := []struct {
		args       []string
		code       int
		stdoutHas  string
		stderrHas  string
		stderrNone bool
	}{
		{args: []string{"version"}, code: 0, stdoutHas: "edgeadm ", stderrNone: true},
		{args: []string{"-v", "10", "version", "-o", "yaml"}, code: 0, stdoutHas: "kubernetesVersion: "},
		{args: []string{"completion", "bash"}, code: 0, stdoutHas: "__start_edgeadm", stderrNone: true},
		{args: []string{"completion", "zsh"}, code: 0, stdoutHas: "#compdef edgeadm", stderrNone: true},
		{args: []string{"completion", "fish"}, code: 0, stdoutHas: "complete -c edgeadm", stderrNone: true},
		{args: []string{"--help"}, code: 0, stdoutHas: "Usage:", stderrNone: true},
		{args: []string{"join", "203.0.113.10:6443", "--token", "abcdef.0123456789abcdef"}, code: 2, stderrHas: "error: --discovery-token-ca-cert-hash is required"},
		{args: []string{"reset", "now"}, code: 2, stderrHas: `error: unknown command "now" for "edgeadm reset"`},
		{args: []string{"--kubeconfig", "/nonexistent/edgeadm.conf", "addon", "edge-apps", "--dry-run", "-o", "yaml"}, code: 1, stderrHas: "error: kubeconfig from --kubeconfig"},
		{args: []string{"--kubeconfig", "/nonexistent/edgeadm.conf", "token", "list"}, code: 1, stderrHas: "error: kubeconfig from --kubeconfig"},
		{args: []string{"--bogus"}, code: 2, stderrHas: "error: unknown flag: --bogus: run 'edgeadm --help' for usage"},
		{args: []string{"version", "-o", "xml"}, code: 2, stderrHas: `invalid output format "xml"`},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			r := runIn(t, bin, home, tmp, work, tt.args...)
			if r.code != tt.code {
				t.Errorf("exit %d, want %d (stderr %q)", r.code, tt.code, r.stderr)
			}
			if !strings.Contains(r.stdout, tt.stdoutHas) {
				t.Errorf("stdout %q lacks %q", r.stdout, tt.stdoutHas)
			}
			if !strings.Contains(r.stderr, tt.stderrHas) {
				t.Errorf("stderr %q lacks %q", r.stderr, tt.stderrHas)
			}
			if tt.stderrNone && r.stderr != "" {
				t.Errorf("stderr = %q, want nothing", r.stderr)
			}
			if tt.code != 0 && r.stdout != "" {
				t.Errorf("stdout = %q on failure, want nothing", r.stdout)
			}
		})
	}
	for _, dir := range []string{home, tmp, work} {
		entries, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			t.Errorf("edgeadm wrote %s", filepath.Join(dir, e.Name()))
		}
	}
}
