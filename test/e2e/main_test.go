// Package e2e runs the edgeadm binary against real control planes and edge
// hosts from package testenv.
package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// buildTimeout bounds building the edgeadm binary (a cold build cache on a
// loaded two-core machine takes minutes).
const buildTimeout = 10 * time.Minute

var (
	binDir    string
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "edgeadm-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e: temp dir for the edgeadm binary:", err)
		os.Exit(1)
	}
	binDir = dir
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// Edgeadm returns the path of an edgeadm binary built from this tree, once per
// test process, the first time a test asks for it.
func Edgeadm(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
		defer cancel()
		binPath = filepath.Join(binDir, "edgeadm")
		cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", binPath, "github.com/edgeadm/edgeadm/cmd/edgeadm")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			buildErr = fmt.Errorf("go build edgeadm: %w\n%s", err, out.String())
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// Result is one run of the edgeadm binary.
type Result struct {
	Stdout, Stderr string
	Code           int
}

// runTimeout bounds one edgeadm run in a test.
const runTimeout = 2 * time.Minute

// RunEdgeadm runs the edgeadm binary with args and returns its output and
// exit code; it fails the test only if the binary could not be run at all.
func RunEdgeadm(t testing.TB, args ...string) Result {
	t.Helper()
	bin := Edgeadm(t) // before the run's clock starts
	ctx, cancel := context.WithTimeout(context.Background(), runTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	r := Result{Stdout: out.String(), Stderr: errOut.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		r.Code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("run edgeadm %v: %v", args, err)
	}
	return r
}
