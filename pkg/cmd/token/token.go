// Package token implements "edgeadm token": bootstrap tokens for joining edge
// nodes.
package token

import (
	"github.com/spf13/cobra"

	"github.com/edgeadm/edgeadm/pkg/cmd"
	"github.com/edgeadm/edgeadm/pkg/cmd/token/create"
	"github.com/edgeadm/edgeadm/pkg/cmd/token/delete"
	"github.com/edgeadm/edgeadm/pkg/cmd/token/list"
)

// NewCommand returns the "token" command group.
func NewCommand(streams cmd.IOStreams, globals *cmd.Globals) *cobra.Command {
	c := cmd.NewGroup("token", "Manage bootstrap tokens for joining edge nodes",
		`Manage bootstrap tokens for joining edge nodes.

A token is a kubeadm bootstrap token (a Secret in kube-system). With the cluster
CA's public key hash and the address edge nodes use to reach the API server, it is
all "edgeadm join" needs.`)
	c.AddCommand(
		create.NewCommand(streams, globals),
		list.NewCommand(streams, globals),
		delete.NewCommand(streams, globals),
	)
	return c
}
