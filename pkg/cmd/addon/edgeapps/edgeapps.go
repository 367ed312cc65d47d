// Package edgeapps implements "edgeadm addon edge-apps". Its flags are
// declared; the command is not built yet.
package edgeapps

import (
	"path/filepath"

	"github.com/spf13/cobra"
	kubeadmconstants "k8s.io/kubernetes/cmd/kubeadm/app/constants"

	"github.com/edgeadm/edgeadm/pkg/cmd"
	"github.com/edgeadm/edgeadm/pkg/cmd/printer"
)

type options struct {
	globals *cmd.Globals

	caCert           string
	caKey            string
	masterPublicAddr string
	imageRepository  string
	edgeVersion      string

	dryRun bool
	output string
}

// NewCommand returns the "addon edge-apps" command.
func NewCommand(streams cmd.IOStreams, globals *cmd.Globals) *cobra.Command {
	o := &options{globals: globals}
	pki := filepath.Join(kubeadmconstants.KubernetesDir, "pki")
	c := &cobra.Command{
		Use:   "edge-apps",
		Short: "Install the edge components into the cluster",
		Long: `Install the edge components into the cluster the kubeconfig points at.

Reads the cluster's facts (version, CA, service CIDR, DNS domain, API server
endpoints), renders the EdgeNode CRD, edge-controller, edgehub configuration,
tunnel, edge CoreDNS and RBAC from them, and applies them server-side with field
manager "edgeadm". What was created and what was adopted is recorded in the
cluster so that "edgeadm detach edge-apps" can undo exactly that. Running it
again is safe.`,
		Example: `  edgeadm addon edge-apps --master-public-addr 203.0.113.10:6443
  edgeadm addon edge-apps --master-public-addr 203.0.113.10:6443 --dry-run -o yaml`,
		Args: cmd.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			return runE(c, streams, o)
		},
	}
	fs := c.Flags()
	fs.StringVar(&o.caCert, "ca.cert", filepath.Join(pki, kubeadmconstants.CACertName), "Cluster CA certificate, used to issue the edge components' certificates.")
	fs.StringVar(&o.caKey, "ca.key", filepath.Join(pki, kubeadmconstants.CAKeyName), "Cluster CA private key, used to issue the edge components' certificates.")
	fs.StringVar(&o.masterPublicAddr, "master-public-addr", "",
		`Address (host or host:port) edge nodes use to reach the API server. Recorded in the cluster for "edgeadm token create".`)
	fs.StringVar(&o.imageRepository, "image-repository", "", "Registry to pull the edge component images from. Defaults to the one built into this edgeadm.")
	fs.StringVar(&o.edgeVersion, "edge-version", "", "Version of the edge components to install. Defaults to this edgeadm's version.")
	fs.BoolVar(&o.dryRun, "dry-run", false, "Print what would be applied without changing the cluster.")
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
