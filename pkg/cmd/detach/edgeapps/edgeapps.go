// Package edgeapps implements "edgeadm detach edge-apps". Its flags are
// declared; the command is not built yet.
package edgeapps

import (
	"github.com/spf13/cobra"

	"github.com/edgeadm/edgeadm/pkg/cmd"
)

type options struct {
	globals *cmd.Globals

	force  bool
	dryRun bool
}

// NewCommand returns the "detach edge-apps" command.
func NewCommand(streams cmd.IOStreams, globals *cmd.Globals) *cobra.Command {
	o := &options{globals: globals}
	c := &cobra.Command{
		Use:   "edge-apps",
		Short: "Remove the edge components from the cluster",
		Long: `Remove the edge components from the cluster.

Deletes exactly the objects "edgeadm addon edge-apps" created and restores the
ones it changed, as recorded in the cluster. Refuses while edge nodes are still
joined, unless --force is given.`,
		Args: cmd.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			return runE(c, streams, o)
		},
	}
	fs := c.Flags()
	fs.BoolVar(&o.force, "force", false, "Detach even while edge nodes are still joined; they lose their edge components.")
	fs.BoolVar(&o.dryRun, "dry-run", false, "Print what would be removed or restored without changing the cluster.")
	return c
}

func runE(c *cobra.Command, _ cmd.IOStreams, _ *options) error {
	return cmd.NotImplemented(c)
}
