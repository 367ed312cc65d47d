// Package completion implements "edgeadm completion": it writes a shell
// completion script to stdout and nowhere else; where to put it is the
// user's choice.
package completion

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/edgeadm/edgeadm/pkg/cmd"
)

// Shells lists the supported shells in the order help texts name them.
func Shells() []string { return []string{"bash", "zsh", "fish"} }

// NewCommand returns the "completion" command.
func NewCommand(streams cmd.IOStreams) *cobra.Command {
	return &cobra.Command{
		Use:   "completion bash|zsh|fish",
		Short: "Print a shell completion script to stdout",
		Long: `Print a shell completion script to stdout. Nothing is installed; load or save it yourself:

  bash:  source <(edgeadm completion bash)
         edgeadm completion bash > /etc/bash_completion.d/edgeadm
  zsh:   source <(edgeadm completion zsh)
         edgeadm completion zsh > "${fpath[1]}/_edgeadm"
  fish:  edgeadm completion fish | source
         edgeadm completion fish > ~/.config/fish/completions/edgeadm.fish`,
		Args:                  cmd.ExactArgs(1),
		ValidArgs:             Shells(),
		DisableFlagsInUseLine: true,
		RunE: func(c *cobra.Command, args []string) error {
			return runE(c, streams, args[0])
		},
	}
}

func runE(c *cobra.Command, streams cmd.IOStreams, shell string) error {
	root := c.Root()
	switch shell {
	case "bash":
		return root.GenBashCompletionV2(streams.Out, true)
	case "zsh":
		return root.GenZshCompletion(streams.Out)
	case "fish":
		return root.GenFishCompletion(streams.Out, true)
	}
	return cmd.UsageError(c, fmt.Errorf("unsupported shell %q: use one of: %s", shell, strings.Join(Shells(), ", ")))
}
