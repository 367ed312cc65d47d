// Package addon implements "edgeadm addon": add edge capabilities to an
// existing cluster.
package addon

import (
	"github.com/spf13/cobra"

	"github.com/edgeadm/edgeadm/pkg/cmd"
	"github.com/edgeadm/edgeadm/pkg/cmd/addon/edgeapps"
)

// NewCommand returns the "addon" command group.
func NewCommand(streams cmd.IOStreams, globals *cmd.Globals) *cobra.Command {
	c := cmd.NewGroup("addon", "Add edge capabilities to an existing cluster",
		"Add edge capabilities to an existing Kubernetes cluster. Undo with \"edgeadm detach\".")
	c.AddCommand(edgeapps.NewCommand(streams, globals))
	return c
}
