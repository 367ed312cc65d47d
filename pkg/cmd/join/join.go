// Package join implements "edgeadm join": turn this host into an edge node of
// the cluster behind <host:port>. Its flags are declared; the workflow is not
// built yet.
package join

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/edgeadm/edgeadm/pkg/cmd"
	"github.com/edgeadm/edgeadm/pkg/cmd/printer"
)

type options struct {
	apiServerEndpoint string

	token                      string
	discoveryTokenCACertHashes []string
	discoveryTokenUnsafeSkipCA bool

	installPkgPath   string
	installPkgSHA256 string

	nodeName   string
	nodeLabels map[string]string

	dryRun bool
	output string
}

// NewCommand returns the "join" command.
func NewCommand(streams cmd.IOStreams) *cobra.Command {
	o := &options{}
	c := &cobra.Command{
		Use:   "join <host:port>",
		Short: "Join this host to a cluster as an edge node",
		Long: `Join this host to a cluster as an edge node.

Runs preflight checks (nothing is changed yet), fetches and verifies the install
package, installs the container runtime, kubelet, CNI plugins and edgehub as
systemd units, discovers the cluster with the bootstrap token, and bootstraps the
kubelet's credentials through edgehub. Every change to the host is journalled so
that "edgeadm reset" can undo it.

<host:port> is the address edge nodes use to reach the API server. The command to
run is printed by "edgeadm token create --print-join-command".`,
		Example: `  edgeadm join 203.0.113.10:6443 --token abcdef.0123456789abcdef \
    --discovery-token-ca-cert-hash sha256:<hash> \
    --install-pkg-path ftp://203.0.113.10/kube-linux-amd64-v1.37.1.tar.gz \
    --install-pkg-sha256 <sha256>`,
		Args: func(c *cobra.Command, args []string) error {
			if len(args) != 1 {
				return cmd.UsageError(c, fmt.Errorf("expected one argument, the API server address edge nodes use as <host:port>, got %d", len(args)))
			}
			return nil
		},
		RunE: func(c *cobra.Command, args []string) error {
			o.apiServerEndpoint = args[0]
			return runE(c, streams, o)
		},
	}
	fs := c.Flags()
	fs.StringVar(&o.token, "token", "", "Bootstrap token used for discovery and for the kubelet's TLS bootstrap (from \"edgeadm token create\").")
	fs.StringSliceVar(&o.discoveryTokenCACertHashes, "discovery-token-ca-cert-hash", nil,
		`For token-based discovery, validate that the cluster CA's public key matches this hash (format "sha256:<hex>"). May be repeated.`)
	fs.BoolVar(&o.discoveryTokenUnsafeSkipCA, "discovery-token-unsafe-skip-ca-verification", false,
		"For token-based discovery, allow joining without pinning the cluster CA with --discovery-token-ca-cert-hash.")
	fs.StringVar(&o.installPkgPath, "install-pkg-path", "",
		"Where to get the install package (kube-linux-<arch>-v<k8s>.tar.gz): a local path or an ftp://, http:// or https:// URL.")
	fs.StringVar(&o.installPkgSHA256, "install-pkg-sha256", "", "Expected sha256 of the install package; it is verified before anything is unpacked.")
	fs.StringVar(&o.nodeName, "node-name", "", "Name of the node in the cluster. Defaults to the host name.")
	fs.StringToStringVar(&o.nodeLabels, "node-labels", nil, `Labels to put on the node, as "key=value,key2=value2".`)
	fs.BoolVar(&o.dryRun, "dry-run", false, "Print what would be done to the host without changing anything.")
	printer.AddFlag(fs, &o.output)
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
