// Package edgeapps implements "edgeadm detach edge-apps".
package edgeapps

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/edgeadm/edgeadm/pkg/addon"
	"github.com/edgeadm/edgeadm/pkg/cmd"
	"github.com/edgeadm/edgeadm/pkg/cmd/exitcode"
	"github.com/edgeadm/edgeadm/pkg/cmd/printer"
	"github.com/edgeadm/edgeadm/pkg/detach"
)

type options struct {
	globals *cmd.Globals

	force  bool
	dryRun bool
	output string
}

// NewCommand returns the "detach edge-apps" command.
func NewCommand(streams cmd.IOStreams, globals *cmd.Globals) *cobra.Command {
	o := &options{globals: globals}
	c := &cobra.Command{
		Use:   "edge-apps",
		Short: "Remove the edge components from the cluster",
		Long: `Remove the edge components from the cluster.

Deletes exactly the objects "edgeadm addon edge-apps" created, as recorded in
kube-system/edgeadm, in reverse order, and waits (bounded) until each is gone;
objects addon adopted (kubeadm's or yours) are left exactly as they are. An
object deleted and re-created by someone else since addon is left alone. The
record is deleted last; if a deletion fails, the record keeps what is left so
that running detach again finishes the job. With no record, there is nothing
to do and detach exits 0.

Refuses while nodes labelled superedge.io/edge-node=enable exist, unless
--force is given.

If addon deployed the tunnel (docs/tunnel.md), detach first puts this
master's kube-apiserver manifest back exactly as it was (from the backup
addon kept outside the manifests folder), waits for the API server, and
removes the proxy server pod; it must run as root on every master addon
configured. While other masters still use the tunnel it stops there and
names them; the last one restores kube-system/kubeadm-config and removes
the rest.

Exit codes: 0 done or nothing to do; 1 failed; 2 bad command line;
4 missing permissions (nothing was changed); 5 refused because edge nodes are
joined (nothing was changed), or because other masters still use the tunnel
(the message says whether this master's API server was restored).`,
		Args: cmd.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			return runE(c, streams, o)
		},
	}
	fs := c.Flags()
	fs.BoolVar(&o.force, "force", false, "Detach even while edge nodes are still joined; they lose their edge components.")
	fs.BoolVar(&o.dryRun, "dry-run", false, "List what would be deleted without changing anything.")
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
	cfg, path, err := o.globals.RESTConfig()
	if err != nil {
		return err
	}
	fmt.Fprintf(streams.ErrOut, "[kubeconfig] %s, server %s\n", path, cfg.Host)
	res, err := detach.Run(c.Context(), detach.Options{RESTConfig: cfg, Force: o.force, DryRun: o.dryRun, Progress: streams.ErrOut,
		Tunnel: addon.TunnelOptions{Root: "/"}})
	switch {
	case errors.Is(err, detach.ErrEdgeNodesJoined), errors.Is(err, detach.ErrTunnelMasters):
		return exitcode.New(exitcode.Refused, err)
	case errors.Is(err, addon.ErrForbidden):
		return exitcode.New(exitcode.PreflightFailed, err)
	case err != nil:
		return err
	}
	if p != nil {
		return p.Print(streams.Out, res)
	}
	if res.NothingToDo {
		fmt.Fprintln(streams.Out, "nothing to do: no edgeadm record (kube-system/edgeadm) in this cluster")
		return nil
	}
	if o.dryRun {
		fmt.Fprintln(streams.Out, "dry run: nothing was changed; detach would:")
	} else {
		fmt.Fprintln(streams.Out, "edge-apps detached:")
	}
	if t := res.Tunnel; t != nil && t.LocalMaster != "" {
		fmt.Fprintf(streams.Out, "  tunnel: the kube-apiserver manifest of %s is the original again (restored: %t); kubeadm-config: %s\n", t.LocalMaster, t.Restored, t.KubeadmConfig)
	}
	for _, a := range res.Actions {
		fmt.Fprintf(streams.Out, "  %-16s %s\n", a.Done, a.Ref())
	}
	return nil
}
