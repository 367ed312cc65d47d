// Package create implements "edgeadm token create". Its flags are declared;
// the command is not built yet.
package create

import (
	"time"

	"github.com/spf13/cobra"
	bootstraptokenv1 "k8s.io/kubernetes/cmd/kubeadm/app/apis/bootstraptoken/v1"

	"github.com/edgeadm/edgeadm/pkg/cmd"
)

type options struct {
	globals *cmd.Globals

	printJoinCommand bool
	ttl              time.Duration
	description      string
	groups           []string
	usages           []string

	masterPublicAddr string
	installPkgPath   string
	installPkgSHA256 string
}

// NewCommand returns the "token create" command.
func NewCommand(streams cmd.IOStreams, globals *cmd.Globals) *cobra.Command {
	o := &options{globals: globals}
	c := &cobra.Command{
		Use:   "create",
		Short: "Create a bootstrap token, optionally printing the edge join command",
		Long: `Create a bootstrap token in the cluster and print it to stdout.

With --print-join-command, print instead the whole "edgeadm join" command an edge
host needs: the API server address edge nodes use, the token, the CA hash and the
install package.`,
		Args: cmd.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			return runE(c, streams, o)
		},
	}
	fs := c.Flags()
	fs.BoolVar(&o.printJoinCommand, "print-join-command", false, "Print the full \"edgeadm join\" command instead of only the token.")
	fs.DurationVar(&o.ttl, "ttl", bootstraptokenv1.DefaultTokenDuration, "How long the token is valid before it is deleted automatically (e.g. 1s, 2m, 3h). 0 means it never expires.")
	fs.StringVar(&o.description, "description", "", "A human-friendly description of what the token is for.")
	fs.StringSliceVar(&o.groups, "groups", append([]string(nil), bootstraptokenv1.DefaultTokenGroups...),
		"Extra groups the token authenticates as when used for authentication. Each must match system:bootstrappers:[a-z0-9:-]{0,255}[a-z0-9].")
	fs.StringSliceVar(&o.usages, "usages", append([]string(nil), bootstraptokenv1.DefaultTokenUsages...), "Ways the token may be used: signing, authentication.")
	fs.StringVar(&o.masterPublicAddr, "master-public-addr", "",
		`Address (host or host:port) edge nodes use to reach the API server, for the join command. Defaults to the one "edgeadm addon edge-apps" recorded.`)
	fs.StringVar(&o.installPkgPath, "install-pkg-path", "", "Install package location to put in the join command: a path on the edge host or an ftp://, http:// or https:// URL.")
	fs.StringVar(&o.installPkgSHA256, "install-pkg-sha256", "", "sha256 of the install package to put in the join command.")
	return c
}

func runE(c *cobra.Command, _ cmd.IOStreams, _ *options) error {
	return cmd.NotImplemented(c)
}
