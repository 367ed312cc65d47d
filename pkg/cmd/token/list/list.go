// Package list implements "edgeadm token list".
package list

import (
	"time"

	"github.com/spf13/cobra"

	"github.com/edgeadm/edgeadm/pkg/cmd"
	"github.com/edgeadm/edgeadm/pkg/cmd/printer"
	"github.com/edgeadm/edgeadm/pkg/cmd/token/internal/cluster"
	"github.com/edgeadm/edgeadm/pkg/token"
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
		Long: `List the cluster's bootstrap tokens with their expiry, usages, groups and
description, as "kubeadm token list" does: the whole tokens are shown, to those
allowed to read Secrets in kube-system.

-o json and -o yaml print a v1 List of kubeadm's BootstrapToken output objects
(output.kubeadm.k8s.io/v1alpha3).`,
		Args: cmd.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			return runE(c, streams, o)
		},
	}
	printer.AddFlag(c.Flags(), &o.output)
	return c
}

func runE(c *cobra.Command, streams cmd.IOStreams, o *options) error {
	defer token.InstallLogFilter()()
	var p printer.Printer
	if o.output != "" {
		var err error
		if p, err = printer.New(o.output); err != nil {
			return cmd.UsageError(c, err)
		}
	}
	cl, err := cluster.Connect(o.globals, streams)
	if err != nil {
		return err
	}
	tokens, err := token.List(c.Context(), cl)
	if err != nil {
		return err
	}
	if p != nil {
		return p.Print(streams.Out, token.ListObject(tokens))
	}
	return token.PrintTable(streams.Out, tokens, time.Now())
}
