// Package create implements "edgeadm token create".
package create

import (
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	bootstraptokenv1 "k8s.io/kubernetes/cmd/kubeadm/app/apis/bootstraptoken/v1"

	"github.com/edgeadm/edgeadm/pkg/cmd"
	"github.com/edgeadm/edgeadm/pkg/cmd/token/internal/cluster"
	"github.com/edgeadm/edgeadm/pkg/token"
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
	caCertPath       string
	dryRun           bool
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
install package.

The token is kubeadm's: a Secret kube-system/bootstrap-token-<id>. Edge nodes find
the cluster through kube-public/cluster-info, signed for the token by the
controller-manager's bootstrapsigner. Where no bootstrapsigner runs, edgeadm signs
cluster-info for the token itself and "edgeadm token delete" removes that
signature again.

All flags are checked before anything is created. The token is printed only to
stdout, and never logged at any -v.`,
		Example: `  # The command to run on an edge host, with the address recorded by "edgeadm addon":
  edgeadm token create --print-join-command

  # A token valid for two hours, for an edge host behind a public address:
  edgeadm token create --print-join-command --ttl 2h --master-public-addr edge.example.com:6443 \
    --install-pkg-path ftp://203.0.113.5/kube-linux-amd64-v1.37.1.tar.gz --install-pkg-sha256 <sha256>`,
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
		`Address (host or host:port) edge nodes use to reach the API server, for the join command. Defaults to the one "edgeadm addon edge-apps" recorded; a missing port is the API server's secure port.`)
	fs.StringVar(&o.installPkgPath, "install-pkg-path", "", "Install package location to put in the join command: a path on the edge host or an ftp://, http:// or https:// URL.")
	fs.StringVar(&o.installPkgSHA256, "install-pkg-sha256", "", "sha256 of the install package to put in the join command.")
	fs.StringVar(&o.caCertPath, "ca.cert", token.DefaultCACertPath,
		"The cluster CA certificate whose hash goes into the join command. The default is used when readable; it must agree with the kubeconfig's CA and kube-public/cluster-info.")
	_ = c.MarkFlagFilename("ca.cert")
	fs.BoolVar(&o.dryRun, "dry-run", false, "Check everything and print what would be created (the token hidden); change nothing.")
	return c
}

func runE(c *cobra.Command, streams cmd.IOStreams, o *options) error {
	defer token.InstallLogFilter()()
	opts := token.CreateOptions{
		TTL:                o.ttl,
		Description:        o.description,
		Usages:             o.usages,
		PrintJoinCommand:   o.printJoinCommand,
		MasterPublicAddr:   o.masterPublicAddr,
		InstallPkgPath:     o.installPkgPath,
		InstallPkgSHA256:   o.installPkgSHA256,
		CACertPath:         o.caCertPath,
		CACertPathExplicit: c.Flags().Changed("ca.cert"),
		DryRun:             o.dryRun,
	}
	// kubeadm's default group is for tokens that authenticate; given
	// explicitly, groups are checked against the usages.
	if c.Flags().Changed("groups") {
		opts.Groups = o.groups
	}
	if err := opts.Validate(); err != nil {
		return cmd.UsageError(c, err)
	}
	cl, err := cluster.Connect(o.globals, streams)
	if err != nil {
		return err
	}
	res, err := token.Create(c.Context(), cl, opts)
	var ve *token.ValidationError
	if errors.As(err, &ve) {
		return cmd.UsageError(c, err)
	}
	if err != nil {
		return err
	}
	if o.dryRun {
		fmt.Fprintf(streams.ErrOut, "dry run: would create bootstrap token %s as Secret %s/%s; nothing was changed\n",
			res.Token, res.Secret.Namespace, res.Secret.Name)
		if res.Join != nil {
			fmt.Fprintln(streams.Out, res.Join.String())
		}
		return nil
	}
	if res.Join != nil {
		fmt.Fprintln(streams.Out, res.Join.Reveal())
		return nil
	}
	fmt.Fprintln(streams.Out, res.Token.Reveal())
	return nil
}
