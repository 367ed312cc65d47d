// Package detach implements "edgeadm detach": remove edge capabilities that
// "edgeadm addon" added.
package detach

import (
	"github.com/spf13/cobra"

	"github.com/edgeadm/edgeadm/pkg/cmd"
	"github.com/edgeadm/edgeadm/pkg/cmd/detach/edgeapps"
)

// NewCommand returns the "detach" command group.
func NewCommand(streams cmd.IOStreams, globals *cmd.Globals) *cobra.Command {
	c := cmd.NewGroup("detach", "Remove edge capabilities that edgeadm addon added",
		"Remove edge capabilities that \"edgeadm addon\" added to the cluster.")
	c.AddCommand(edgeapps.NewCommand(streams, globals))
	return c
}
