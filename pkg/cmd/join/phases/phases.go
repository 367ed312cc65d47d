package phases

import (
	"fmt"

	"k8s.io/kubernetes/cmd/kubeadm/app/cmd/phases/workflow"
)

// Flags are the join command's flags that "edgeadm join phase <name>"
// takes too: every phase runs with the whole join's validated inputs.
var Flags = []string{"token", "discovery-token-ca-cert-hash", "discovery-token-unsafe-skip-ca-verification",
	"install-pkg-path", "install-pkg-sha256", "node-name", "node-ip", "node-labels",
	"ignore-preflight-errors", "timeout", "dry-run", "output"}

// All are the phases of "edgeadm join", in the order they run.
func All() []workflow.Phase {
	return []workflow.Phase{
		NewPreflightPhase(),
		NewPackagePhase(),
		NewInstallPhase(),
		NewKernelPhase(),
		NewContainerdPhase(),
		NewImagesPhase(),
		NewHostsPhase(),
		NewDiscoveryPhase(),
		NewKubeletConfigPhase(),
		NewEdgeHubPhase(),
		NewKubeletStartPhase(),
		NewTLSBootstrapPhase(),
		NewCNIPhase(),
		NewWaitReadyPhase(),
		NewLabelPhase(),
		NewCompletePhase(),
	}
}

// NewCompletePhase records in the journal that the join is complete, so
// that the same join again is a no-op. It runs only when every phase ran.
func NewCompletePhase() workflow.Phase {
	return workflow.Phase{
		Name:   "complete",
		Short:  "Record the join as complete",
		Hidden: true,
		RunIf:  notJoined,
		Run: func(c workflow.RunData) error {
			d := c.(Data)
			if d.DryRun() {
				return nil
			}
			if err := d.Journal().Complete(); err != nil {
				return fmt.Errorf("record the join as complete: %w", err)
			}
			return nil
		},
	}
}
