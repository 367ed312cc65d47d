package phases

import (
	"fmt"
	"path"

	"k8s.io/kubernetes/cmd/kubeadm/app/cmd/phases/workflow"

	"github.com/edgeadm/edgeadm/pkg/host"
)

// NewImagesPhase imports the package's image tarballs (the pause image at
// least) into containerd's k8s.io namespace, where the kubelet looks: an edge
// host needs no registry to start pods.
func NewImagesPhase() workflow.Phase {
	return workflow.Phase{
		Name:         "images",
		Short:        "Import the package's images (pause, ...) into containerd",
		InheritFlags: Flags,
		RunIf:        notJoined,
		Run: func(c workflow.RunData) error {
			d := c.(Data)
			pkg, err := d.Package()
			if err != nil {
				return err
			}
			p := d.Paths()
			for _, im := range pkg.Components.Images {
				// Removing /var/lib/containerd on reset removes the images:
				// the import needs no undo of its own.
				cmd := host.Cmd(path.Join(p.BinDir, "ctr"), "--address", p.ContainerdSocket, "-n", "k8s.io", "images", "import", im.Path)
				if _, err := d.Host().Run(d.Context(), cmd); err != nil {
					return fmt.Errorf("import image %s: %w", im.Ref, err)
				}
				fmt.Fprintf(d.Out(), "[images] Imported %s\n", im.Ref)
			}
			return nil
		},
	}
}
