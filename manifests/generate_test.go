package manifests

import (
	"os/exec"
	"testing"
)

// TestGeneratedUpToDate fails when the EdgeNode deepcopy or CRD no longer
// match the Go types in pkg/apis/edge/v1alpha1: run `make generate`.
func TestGeneratedUpToDate(t *testing.T) {
	if testing.Short() {
		t.Skip("builds controller-gen")
	}
	out, err := exec.Command("../scripts/generate.sh", "--verify").CombinedOutput()
	if err != nil {
		t.Fatalf("generated files are stale (%v):\n%s", err, out)
	}
}
