// Package version implements "edgeadm version".
package version

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/edgeadm/edgeadm/pkg/cmd"
	"github.com/edgeadm/edgeadm/pkg/cmd/printer"
	"github.com/edgeadm/edgeadm/pkg/version"
)

type options struct {
	output string
}

// NewCommand returns the "version" command.
func NewCommand(streams cmd.IOStreams) *cobra.Command {
	o := &options{}
	c := &cobra.Command{
		Use:   "version",
		Short: "Print the edgeadm version",
		Long: "Print edgeadm's version, the commit it was built from, the Kubernetes (kubeadm)\n" +
			"library version it is built against, and the Go version and platform.",
		Args: cmd.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			return runE(c, streams, o)
		},
	}
	printer.AddFlag(c.Flags(), &o.output)
	return c
}

func runE(c *cobra.Command, streams cmd.IOStreams, o *options) error {
	info := version.Get()
	if o.output == "" {
		_, err := fmt.Fprintln(streams.Out, info.String())
		return err
	}
	p, err := printer.New(o.output)
	if err != nil {
		return cmd.UsageError(c, err)
	}
	return p.Print(streams.Out, info)
}
