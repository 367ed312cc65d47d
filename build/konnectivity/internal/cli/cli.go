// Package cli runs one of Konnectivity's upstream commands the way its own
// main does (its options' flags plus klog's), and adds a "version"
// argument that prints the module version the binary was built from, which
// scripts/test-env.sh checks after a build.
package cli

import (
	"flag"
	"fmt"
	"os"
	"runtime/debug"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"k8s.io/klog/v2"

	"sigs.k8s.io/apiserver-network-proxy/pkg/util"
)

// Module is the upstream module both commands come from.
const Module = "sigs.k8s.io/apiserver-network-proxy"

// Run executes command with opts' flags and klog's, and exits non-zero when
// it fails.
func Run(name string, command *cobra.Command, opts *pflag.FlagSet) {
	if len(os.Args) == 2 && os.Args[1] == "version" {
		fmt.Printf("%s %s %s\n", name, Module, moduleVersion())
		return
	}
	flags := command.Flags()
	flags.AddFlagSet(opts)
	klogFlags := flag.NewFlagSet(name, flag.ExitOnError)
	klog.InitFlags(klogFlags)
	// Upstream spells flags with dashes (--log-file, not --log_file).
	klogFlags.VisitAll(func(f *flag.Flag) {
		f.Name = util.Normalize(f.Name)
		flags.AddGoFlag(f)
	})
	if err := command.Execute(); err != nil {
		klog.ErrorS(err, "exiting", "command", name)
		klog.Flush()
		os.Exit(1)
	}
}

func moduleVersion() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "(unknown)"
	}
	for _, m := range bi.Deps {
		if m.Path == Module {
			return m.Version
		}
	}
	return "(unknown)"
}
