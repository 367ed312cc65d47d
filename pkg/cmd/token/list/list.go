// Package list implements "edgeadm token list". Its flags are declared; the
// command is not built yet.
package list

import (
	"github.com/spf13/cobra"

	"github.com/edgeadm/edgeadm/pkg/cmd"
	"github.com/edgeadm/edgeadm/pkg/cmd/printer"
)

type options struct {
	globals *cmd.Globals
	output  string
}

// NewCommand returns the "token list" command.
func NewCommand(streams cmd.IOStreams, globals *cmd.Globals) *cobra.Command {
	o := &options{globals: globals}
	c := &cobra.Command{
		Use:   "list",
		Short: "List bootstrap tokens",
		Long:  "List the cluster's bootstrap tokens with their expiry, usages, groups and description.",
		Args:  cmd.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			return runE(c, streams, o)
		},
	}
	printer.AddFlag(c.Flags(), &o.output)
	return c
}

func runE(c *cobra.Command, _ cmd.IOStreams, o *options) error {
	if o.output != "" {
		if _, err := printer.New(o.output); err != nil {
			return cmd.UsageError(c, err)
		}
	}
	return cmd.NotImplemented(c)
}
