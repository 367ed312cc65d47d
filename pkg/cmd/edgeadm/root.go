// Package edgeadm builds the root "edgeadm" command and wires in every
// subcommand.
package edgeadm

import (
	"flag"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"k8s.io/klog/v2"

	"github.com/edgeadm/edgeadm/pkg/cmd"
	"github.com/edgeadm/edgeadm/pkg/cmd/addon"
	"github.com/edgeadm/edgeadm/pkg/cmd/completion"
	"github.com/edgeadm/edgeadm/pkg/cmd/detach"
	"github.com/edgeadm/edgeadm/pkg/cmd/join"
	"github.com/edgeadm/edgeadm/pkg/cmd/reset"
	"github.com/edgeadm/edgeadm/pkg/cmd/token"
	"github.com/edgeadm/edgeadm/pkg/cmd/version"
)

// NewCommand returns the root command with all subcommands.
func NewCommand(streams cmd.IOStreams) *cobra.Command {
	globals := &cmd.Globals{}
	c := &cobra.Command{
		Use:   "edgeadm",
		Short: "Turn a Kubernetes cluster into an edge cluster and join edge nodes to it",
		Long: `edgeadm adds edge capabilities to an existing kubeadm cluster and joins edge
nodes to it: nodes that keep running their workloads while the cloud is out of
reach.

  On the control plane:   edgeadm addon edge-apps --master-public-addr <addr>
                          edgeadm token create --print-join-command
  On each edge host:      edgeadm join <host:port> --token ... (as printed above)
  To undo:                edgeadm reset (edge host), edgeadm detach edge-apps (cluster)`,
		Args: cmd.UnknownSubcommand,
		RunE: func(c *cobra.Command, _ []string) error {
			return c.Help()
		},
		// Errors are printed once, as one line, by the caller; a usage
		// mistake gets a hint to --help rather than the whole usage text.
		SilenceErrors: true,
		SilenceUsage:  true,
	}
	c.SetIn(streams.In)
	c.SetOut(streams.Out)
	c.SetErr(streams.ErrOut)
	c.SetFlagErrorFunc(cmd.FlagErrorFunc)
	// "edgeadm completion" is ours: it prints to stdout only.
	c.CompletionOptions.DisableDefaultCmd = true

	pf := c.PersistentFlags()
	pf.StringVar(&globals.Kubeconfig, "kubeconfig", "",
		"Kubeconfig file to use. Without it: $KUBECONFIG (a list, merged), then ~/.kube/config, then /etc/kubernetes/admin.conf.")
	_ = c.MarkPersistentFlagFilename("kubeconfig")
	addLogFlags(pf)

	c.AddCommand(
		addon.NewCommand(streams, globals),
		detach.NewCommand(streams, globals),
		token.NewCommand(streams, globals),
		join.NewCommand(streams),
		reset.NewCommand(streams),
		version.NewCommand(streams),
		completion.NewCommand(streams),
	)
	return c
}

// addLogFlags adds klog's -v/--v and --vmodule to fs, and none of its other
// flags: edgeadm's logs go to stderr only, so there is no way to make klog
// write a log file (no --log_dir, --log_file, --logtostderr).
func addLogFlags(fs *pflag.FlagSet) {
	klogFlags := flag.NewFlagSet("klog", flag.ContinueOnError)
	klog.InitFlags(klogFlags)
	for _, d := range []struct{ name, def, usage string }{
		{"v", "0", "Log verbosity: 0 for what users need to know, 1 and up for debugging. Logs go to stderr."},
		{"vmodule", "", "Log verbosity per file, as pattern=N,pattern=N (for debugging)."},
	} {
		f := klogFlags.Lookup(d.name)
		// klog's settings are process-wide and InitFlags takes the current
		// value as the default: every command line starts from klog's real
		// defaults, so one run's -v does not leak into the next (tests run
		// many in one process).
		_ = f.Value.Set(d.def)
		f.DefValue, f.Usage = d.def, d.usage
		fs.AddFlag(pflag.PFlagFromGoFlag(f)) // a one-letter name also gets its shorthand: -v
	}
}
