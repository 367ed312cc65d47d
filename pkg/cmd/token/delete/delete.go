// Package delete implements "edgeadm token delete". The command is declared
// but not built yet.
package delete

import (
	"github.com/spf13/cobra"

	"github.com/edgeadm/edgeadm/pkg/cmd"
)

type options struct {
	globals *cmd.Globals
	ids     []string
}

// NewCommand returns the "token delete" command.
func NewCommand(streams cmd.IOStreams, globals *cmd.Globals) *cobra.Command {
	o := &options{globals: globals}
	return &cobra.Command{
		Use:   "delete <token-id|token>...",
		Short: "Delete bootstrap tokens",
		Long: `Delete bootstrap tokens, given by ID ("abcdef") or whole token
("abcdef.0123456789abcdef"). Edge nodes that already joined are not affected.`,
		Args: cmd.MinimumNArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			o.ids = args
			return runE(c, streams, o)
		},
	}
}

func runE(c *cobra.Command, _ cmd.IOStreams, _ *options) error {
	return cmd.NotImplemented(c)
}
