package cmd

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/edgeadm/edgeadm/pkg/cmd/exitcode"
)

// UsageError marks err as a command-line mistake on c: exit code 2, and a
// hint to the command's help instead of the whole help text.
func UsageError(c *cobra.Command, err error) error {
	return exitcode.New(exitcode.Usage, fmt.Errorf("%w: run '%s --help' for usage", err, c.CommandPath()))
}

// FlagErrorFunc is installed on the root command so that every flag parsing
// error (unknown flag, missing or malformed value) becomes a usage error.
func FlagErrorFunc(c *cobra.Command, err error) error {
	return UsageError(c, err)
}

// usageArgs turns a cobra argument validator's failure into a usage error.
func usageArgs(validate cobra.PositionalArgs) cobra.PositionalArgs {
	return func(c *cobra.Command, args []string) error {
		if err := validate(c, args); err != nil {
			return UsageError(c, err)
		}
		return nil
	}
}

// NoArgs accepts no positional arguments.
func NoArgs(c *cobra.Command, args []string) error { return usageArgs(cobra.NoArgs)(c, args) }

// ExactArgs accepts exactly n positional arguments.
func ExactArgs(n int) cobra.PositionalArgs { return usageArgs(cobra.ExactArgs(n)) }

// MinimumNArgs accepts n or more positional arguments.
func MinimumNArgs(n int) cobra.PositionalArgs { return usageArgs(cobra.MinimumNArgs(n)) }

// NewGroup returns a command that only holds subcommands, such as
// "edgeadm token". Run without arguments it prints its help; run with an
// unknown subcommand it fails with a usage error that suggests a near name.
func NewGroup(use, short, long string) *cobra.Command {
	return &cobra.Command{
		Use:   use,
		Short: short,
		Long:  long,
		Args:  UnknownSubcommand,
		RunE: func(c *cobra.Command, _ []string) error {
			return c.Help()
		},
	}
}

// UnknownSubcommand rejects any positional argument on a command whose only
// valid arguments are its subcommands (cobra hands them over as arguments
// when no subcommand matched).
func UnknownSubcommand(c *cobra.Command, args []string) error {
	if len(args) == 0 {
		return nil
	}
	msg := fmt.Sprintf("unknown command %q for %q", args[0], c.CommandPath())
	if c.SuggestionsMinimumDistance <= 0 {
		c.SuggestionsMinimumDistance = 2 // cobra's own default, applied only in its Find
	}
	if s := c.SuggestionsFor(args[0]); len(s) > 0 && !c.DisableSuggestions {
		msg += fmt.Sprintf(" (did you mean %q?)", strings.Join(s, `" or "`))
	}
	return UsageError(c, fmt.Errorf("%s", msg))
}

// NotImplemented is what a command that is declared but not built yet
// returns: it says so plainly and exits with exitcode.NotImplemented.
func NotImplemented(c *cobra.Command) error {
	return exitcode.New(exitcode.NotImplemented,
		fmt.Errorf("%s is not implemented yet in this build: nothing was changed", c.CommandPath()))
}
