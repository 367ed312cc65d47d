// Package edgeapps implements "edgeadm addon edge-apps".
package edgeapps

import (
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	kubeadmconstants "k8s.io/kubernetes/cmd/kubeadm/app/constants"
	"sigs.k8s.io/yaml"

	"github.com/edgeadm/edgeadm/manifests"
	"github.com/edgeadm/edgeadm/pkg/addon"
	"github.com/edgeadm/edgeadm/pkg/clusterfacts"
	"github.com/edgeadm/edgeadm/pkg/cmd"
	"github.com/edgeadm/edgeadm/pkg/cmd/exitcode"
	"github.com/edgeadm/edgeadm/pkg/cmd/printer"
	"github.com/edgeadm/edgeadm/pkg/version"
)

type options struct {
	globals *cmd.Globals

	caCert           string
	caKey            string
	masterPublicAddr string
	imageRepository  string
	edgeVersion      string
	tunnel           bool

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

Learns the cluster's facts (version, CA, apiserver port, service CIDR, DNS IP
and domain, bootstrap-token support), prepares what a kubeadm-style join needs
(kube-public/cluster-info, kube-system kubeadm-config and kubelet-config, and
kubeadm's bootstrap RBAC) where it is missing, and applies the EdgeNode CRD,
edge-controller and edgehub settings server-side with field manager "edgeadm".
Objects that already exist are adopted: used as they are, never edited, never
deleted by detach. What was created and what was adopted is recorded in
kube-system/edgeadm, so that "edgeadm detach edge-apps" undoes exactly that.
Every permission needed is checked before anything is changed. Running it
again changes nothing.

With --tunnel (the default), addon also deploys the cloud-edge tunnel
(Konnectivity, docs/tunnel.md), so that kubectl logs, exec and port-forward
reach edge nodes behind NAT. That needs the API server's
--egress-selector-config-file, which addon sets only on a kubeadm master it
runs on (as root): it writes the proxy server's static pod, backs up
kube-apiserver.yaml outside the manifests folder, adds the flag, waits for
/readyz, a node proxy, and the aggregated APIs and webhook servers that
answered before the change, through the tunnel, rolls back on failure, and
records the change in kube-system/kubeadm-config. Other masters: run the
same command on each of them. Where the control plane cannot be configured
(not kubeadm, k3s, a managed cluster, not run on a master), addon refuses
before changing anything and says what would work; --tunnel=false installs
the rest without the tunnel.

--dry-run -o yaml|json prints every object addon would write, including the
record, and changes nothing; applying that output with
"kubectl apply --server-side --field-manager=edgeadm -f -" gives the same
cluster as a real run.

Exit codes: 0 done; 1 failed (for example the apiserver is unreachable);
2 bad command line; 4 preflight failed (missing permissions, a --ca.key that
does not match the CA, a bad --master-public-addr, a control plane the tunnel
cannot configure): nothing was changed.`,
		Example: `  edgeadm addon edge-apps --master-public-addr 203.0.113.10:6443
  edgeadm addon edge-apps --master-public-addr edge.example.com --dry-run -o yaml
  edgeadm addon edge-apps --master-public-addr 203.0.113.10 --tunnel=false   # not on a kubeadm master`,
		Args: cmd.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			return runE(c, streams, o)
		},
	}
	fs := c.Flags()
	fs.StringVar(&o.caCert, "ca.cert", filepath.Join(pki, kubeadmconstants.CACertName),
		"Cluster CA certificate. Used when readable; otherwise the kubeconfig's CA. Either must have signed the apiserver's certificate.")
	fs.StringVar(&o.caKey, "ca.key", "",
		"Cluster CA private key. Not needed: if given, it is checked against the CA and addon stops if it does not match. (The tunnel signs its proxy server's client certificate with the master's own /etc/kubernetes/pki/ca.key.)")
	fs.StringVar(&o.masterPublicAddr, "master-public-addr", "",
		`Address (host or host:port) edge nodes use to reach the API server; the port defaults to the apiserver's secure port. Recorded in the cluster for "edgeadm token create". Without it, the kubeconfig's server host is used (with a warning) unless it is a loopback address.`)
	fs.StringVar(&o.imageRepository, "image-repository", manifests.DefaultImageRepository, "Registry the edge component images are pulled from (<repository>/edge-controller:<edge-version>).")
	fs.StringVar(&o.edgeVersion, "edge-version", "", "Version (image tag) of the edge components. Defaults to this edgeadm's version.")
	fs.BoolVar(&o.tunnel, "tunnel", true, `Deploy the cloud-edge tunnel (Konnectivity) and point this kubeadm master's API server at it. --tunnel=false skips it: kubectl logs, exec and port-forward to edge nodes behind NAT then do not work.`)
	fs.BoolVar(&o.dryRun, "dry-run", false, "Print what would be written (with -o yaml|json: every object) and change nothing.")
	printer.AddFlag(fs, &o.output)
	return c
}

func runE(c *cobra.Command, streams cmd.IOStreams, o *options) error {
	var p printer.Printer
	if o.output != "" {
		var err error
		if p, err = printer.New(o.output); err != nil {
			return cmd.UsageError(c, err)
		}
	}
	if o.edgeVersion == "" {
		o.edgeVersion = version.Get().Version
	}
	cfg, path, err := o.globals.RESTConfig()
	if err != nil {
		return err
	}
	fmt.Fprintf(streams.ErrOut, "[kubeconfig] %s, server %s\n", path, cfg.Host)
	settings := addon.Settings{MasterPublicAddr: o.masterPublicAddr, ImageRepository: o.imageRepository, EdgeVersion: o.edgeVersion, Tunnel: o.tunnel}
	if c.Flags().Changed("image-repository") {
		// A mirror given by the user holds the proxy images too; by default
		// they come from upstream's registry.
		settings.KonnectivityImageRepository = o.imageRepository
	}
	sum, exe, err := addon.Run(c.Context(), addon.Options{
		RESTConfig: cfg, CACertPath: o.caCert, CAKeyPath: o.caKey,
		Settings: settings, DryRun: o.dryRun, Progress: streams.ErrOut,
		Tunnel: addon.TunnelOptions{Root: "/"},
	})
	switch {
	case errors.Is(err, addon.ErrForbidden), errors.Is(err, addon.ErrBadInput):
		return exitcode.New(exitcode.PreflightFailed, err)
	case errors.Is(err, clusterfacts.ErrUnreachable):
		return err
	case err != nil:
		return err
	}
	if o.dryRun && p != nil {
		return printObjects(streams.Out, o.output, exe.Written)
	}
	if p != nil {
		return p.Print(streams.Out, sum)
	}
	return printHuman(streams.Out, sum)
}

// printObjects prints objects as a multi-document YAML stream or a v1 List.
func printObjects(w io.Writer, format string, objs []*unstructured.Unstructured) error {
	if format == printer.JSON {
		items := make([]any, 0, len(objs))
		for _, o := range objs {
			items = append(items, o.Object)
		}
		p, err := printer.New(printer.JSON)
		if err != nil {
			return err
		}
		return p.Print(w, map[string]any{"apiVersion": "v1", "kind": "List", "items": items})
	}
	for i, o := range objs {
		if i > 0 {
			if _, err := io.WriteString(w, "---\n"); err != nil {
				return err
			}
		}
		b, err := yaml.Marshal(o.Object)
		if err != nil {
			return err
		}
		if _, err := w.Write(b); err != nil {
			return err
		}
	}
	return nil
}

func printHuman(w io.Writer, s *addon.Summary) error {
	verb := "edge-apps added"
	if s.DryRun {
		verb = "dry run: nothing was changed; edge-apps would be added"
	}
	fmt.Fprintf(w, "%s: %s (in %s)\n", verb, addon.CountsString(s.Counts), s.Duration)
	for _, r := range s.Objects {
		fmt.Fprintf(w, "  %-12s %s\n", r.Outcome, r.Ref())
	}
	fmt.Fprintf(w, "Edge nodes will dial %s. Ownership is recorded in %s.\n", s.MasterPublicAddr, s.Record)
	if t := s.Tunnel; t != nil {
		state := "uses the tunnel (unchanged)"
		switch {
		case s.DryRun:
			state = "would use the tunnel"
		case t.APIServerChanged:
			state = "now uses the tunnel (original manifest kept in " + t.Backup + ")"
		}
		fmt.Fprintf(w, "Tunnel: the API server of %s %s.\n", t.LocalMaster, state)
		if len(t.PendingMasters) > 0 {
			fmt.Fprintf(w, "Tunnel: the API servers of %s do not use it yet: run this same command as root on each of them.\n", strings.Join(t.PendingMasters, ", "))
		}
	}
	if !s.DryRun {
		fmt.Fprintln(w, "Next: edgeadm token create --print-join-command")
	}
	return nil
}
