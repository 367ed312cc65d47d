package phases

import (
	"errors"
	"fmt"
	"io/fs"

	"k8s.io/kubernetes/cmd/kubeadm/app/cmd/phases/workflow"
)

// NewPackagePhase fetches the install package and verifies every file of it
// against its manifest, into a private temporary directory: the host is not
// changed. Later phases install from the verified copy.
func NewPackagePhase() workflow.Phase {
	return workflow.Phase{
		Name:         "fetch-package",
		Short:        "Fetch the install package and verify it against its manifest and --install-pkg-sha256",
		InheritFlags: Flags,
		RunIf:        notJoined,
		Run: func(c workflow.RunData) error {
			d := c.(Data)
			pkg, err := d.Package()
			if err != nil {
				return err
			}
			plan, err := InstallPlan(pkg, d.Paths())
			if err != nil {
				return err
			}
			exists := func(p string) bool {
				_, err := d.Host().Lstat(p)
				return err == nil || !errors.Is(err, fs.ErrNotExist)
			}
			if err := CheckUnits(plan, d.Paths(), exists); err != nil {
				return err
			}
			fmt.Fprintf(d.Out(), "[fetch-package] %s: Kubernetes %s for %s, %d files verified (sha256 %s)\n",
				pkg.Source, pkg.Manifest.KubernetesVersion, pkg.Manifest.Arch, len(pkg.Manifest.Files), pkg.SHA256)
			return nil
		},
	}
}
