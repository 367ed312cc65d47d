package edgeadm

import (
	"io"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/edgeadm/edgeadm/pkg/cmd"
)

func newRoot() *cobra.Command {
	return NewCommand(cmd.IOStreams{In: strings.NewReader(""), Out: io.Discard, ErrOut: io.Discard})
}

// The flags each command declares are edgeadm's interface: scripts and docs
// rely on their names, shorthands and defaults.
func TestDeclaredFlags(t *testing.T) {
	type flag struct {
		name, shorthand, def string
	}
	tests := []struct {
		path  string
		flags []flag
	}{
		{"addon edge-apps", []flag{
			{"kubeconfig", "", ""},
			{"ca.cert", "", "/etc/kubernetes/pki/ca.crt"},
			{"ca.key", "", ""}, // addon signs nothing; only checked when given
			{"master-public-addr", "", ""},
			{"image-repository", "", "docker.io/superedge"},
			{"edge-version", "", ""},
			{"dry-run", "", "false"},
			{"output", "o", ""},
		}},
		{"detach edge-apps", []flag{
			{"kubeconfig", "", ""},
			{"force", "", "false"},
			{"dry-run", "", "false"},
			{"output", "o", ""},
		}},
		{"token create", []flag{
			{"kubeconfig", "", ""},
			{"print-join-command", "", "false"},
			{"ttl", "", "24h0m0s"},
			{"description", "", ""},
			{"groups", "", "[system:bootstrappers:kubeadm:default-node-token]"},
			{"usages", "", "[signing,authentication]"},
			{"master-public-addr", "", ""},
			{"install-pkg-path", "", ""},
			{"install-pkg-sha256", "", ""},
		}},
		{"token list", []flag{{"kubeconfig", "", ""}, {"output", "o", ""}}},
		{"token delete", []flag{{"kubeconfig", "", ""}}},
		{"join", []flag{
			{"token", "", ""},
			{"discovery-token-ca-cert-hash", "", "[]"},
			{"discovery-token-unsafe-skip-ca-verification", "", "false"},
			{"install-pkg-path", "", ""},
			{"install-pkg-sha256", "", ""},
			{"node-name", "", ""},
			{"node-labels", "", "[]"},
			{"dry-run", "", "false"},
			{"output", "o", ""},
		}},
		{"reset", []flag{{"force", "f", "false"}, {"dry-run", "", "false"}}},
		{"version", []flag{{"output", "o", ""}, {"v", "v", "0"}, {"vmodule", "", ""}}},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			c, rest, err := newRoot().Find(strings.Fields(tt.path))
			if err != nil || len(rest) != 0 {
				t.Fatalf("Find(%q) = %v, %v", tt.path, rest, err)
			}
			for _, want := range tt.flags {
				f := c.Flags().Lookup(want.name)
				if f == nil {
					f = c.InheritedFlags().Lookup(want.name)
				}
				if f == nil {
					t.Errorf("--%s not declared", want.name)
					continue
				}
				if f.Shorthand != want.shorthand {
					t.Errorf("--%s shorthand = %q, want %q", want.name, f.Shorthand, want.shorthand)
				}
				if f.DefValue != want.def {
					t.Errorf("--%s default = %q, want %q", want.name, f.DefValue, want.def)
				}
				if f.Usage == "" {
					t.Errorf("--%s has no help text", want.name)
				}
			}
		})
	}
}

// klog must offer no way to write a log file.
func TestNoLogFileFlags(t *testing.T) {
	root := newRoot()
	for _, name := range []string{"log_dir", "log_file", "log-dir", "log-file", "logtostderr", "alsologtostderr", "log_file_max_size"} {
		if root.PersistentFlags().Lookup(name) != nil || root.Flags().Lookup(name) != nil {
			t.Errorf("--%s is exposed", name)
		}
	}
}

func TestEveryCommandIsDocumented(t *testing.T) {
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if c.Short == "" || c.Long == "" {
			t.Errorf("%q lacks a Short or Long description", c.CommandPath())
		}
		if c.RunE == nil {
			t.Errorf("%q has no RunE", c.CommandPath())
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(newRoot())
}
