// Package reset implements "edgeadm reset": undo what "edgeadm join" did to
// this host. Its flags are declared; the workflow is not built yet.
package reset

import (
	"github.com/spf13/cobra"

	"github.com/edgeadm/edgeadm/pkg/cmd"
)

type options struct {
	force  bool
	dryRun bool
}

// NewCommand returns the "reset" command.
func NewCommand(streams cmd.IOStreams) *cobra.Command {
	o := &options{}
	c := &cobra.Command{
		Use:   "reset",
		Short: "Undo what edgeadm join did to this host",
		Long: `Undo what "edgeadm join" did to this host.

Replays the join journal backwards: stops and removes the units it installed,
restores the files it changed from their backups and removes the files it added.
Every step runs even when an earlier one failed, and each is reported.`,
		Args: cmd.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			return runE(c, streams, o)
		},
	}
	fs := c.Flags()
	fs.BoolVarP(&o.force, "force", "f", false, "Reset without asking for confirmation.")
	fs.BoolVar(&o.dryRun, "dry-run", false, "Print what would be undone without changing anything.")
	return c
}

func runE(c *cobra.Command, _ cmd.IOStreams, _ *options) error {
	return cmd.NotImplemented(c)
}
