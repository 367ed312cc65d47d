// Package delete implements "edgeadm token delete".
package delete

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/edgeadm/edgeadm/pkg/cmd"
	"github.com/edgeadm/edgeadm/pkg/cmd/token/internal/cluster"
	"github.com/edgeadm/edgeadm/pkg/token"
)

type options struct {
	globals *cmd.Globals
	ids     []string
	dryRun  bool
}

// NewCommand returns the "token delete" command.
func NewCommand(streams cmd.IOStreams, globals *cmd.Globals) *cobra.Command {
	o := &options{globals: globals}
	c := &cobra.Command{
		Use:   "delete <token-id|token>...",
		Short: "Delete bootstrap tokens",
		Long: `Delete bootstrap tokens, given by ID ("abcdef") or whole token
("abcdef.0123456789abcdef"). Edge nodes that already joined are not affected.

Where edgeadm signed kube-public/cluster-info for a token (because no
bootstrapsigner runs), that signature is removed first, and only if nobody has
changed it since. A token that does not exist is reported and is not an error, so
the command can be repeated.`,
		Args: cmd.MinimumNArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			o.ids = args
			return runE(c, streams, o)
		},
	}
	c.Flags().BoolVar(&o.dryRun, "dry-run", false, "Print what would be deleted; change nothing.")
	return c
}

func runE(c *cobra.Command, streams cmd.IOStreams, o *options) error {
	defer token.InstallLogFilter()()
	if _, err := token.ParseIDs(o.ids); err != nil {
		return cmd.UsageError(c, err)
	}
	cl, err := cluster.Connect(o.globals, streams)
	if err != nil {
		return err
	}
	deleted, err := token.Delete(c.Context(), cl, o.ids, o.dryRun)
	prefix, verb := "", "deleted"
	if o.dryRun {
		prefix, verb = "dry run: ", "would be deleted"
	}
	for _, d := range deleted {
		switch {
		case !d.Found && !d.SignatureRemoved:
			fmt.Fprintf(streams.Out, "%sbootstrap token %q not found: nothing to delete\n", prefix, d.ID)
		case !d.Found:
			fmt.Fprintf(streams.Out, "%sbootstrap token %q not found; edgeadm's cluster-info signature for it %s\n", prefix, d.ID, verb)
		case d.SignatureRemoved:
			fmt.Fprintf(streams.Out, "%sbootstrap token %q %s, with edgeadm's cluster-info signature for it\n", prefix, d.ID, verb)
		default:
			fmt.Fprintf(streams.Out, "%sbootstrap token %q %s\n", prefix, d.ID, verb)
		}
	}
	var ve *token.ValidationError
	if errors.As(err, &ve) {
		return cmd.UsageError(c, err)
	}
	return err
}
