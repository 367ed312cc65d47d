// Package app is edgeadm's entry point: Main is the only place that exits.
package app

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"k8s.io/klog/v2"
	"k8s.io/klog/v2/textlogger"

	"github.com/edgeadm/edgeadm/pkg/token"

	"github.com/edgeadm/edgeadm/pkg/cmd"
	"github.com/edgeadm/edgeadm/pkg/cmd/edgeadm"
	"github.com/edgeadm/edgeadm/pkg/cmd/exitcode"
)

// Main runs edgeadm with the process's arguments and streams and exits with
// the code the outcome calls for (see docs/exit-codes.md). An interrupt or
// termination signal cancels the commands' context.
func Main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := RunContext(ctx, cmd.StandardIOStreams(), os.Args[1:])
	stop()
	os.Exit(exitcode.Code(err))
}

// Run runs edgeadm with args (without the program name). It prints a failure
// to streams.ErrOut as one "error: ..." line and returns it; the exit code
// is exitcode.Code of the returned error.
func Run(streams cmd.IOStreams, args []string) error {
	return RunContext(context.Background(), streams, args)
}

// RunContext is Run with a context that commands see as cmd.Context().
func RunContext(ctx context.Context, streams cmd.IOStreams, args []string) error {
	defer logTo(streams.ErrOut)()
	// Every command, not only token's, may see a bootstrap token (join takes
	// one on its command line): scrub them from whatever klog prints.
	defer token.InstallLogFilter()()
	root := edgeadm.NewCommand(streams)
	if args == nil {
		args = []string{} // cobra would read os.Args for nil
	}
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err != nil {
		fmt.Fprintf(streams.ErrOut, "error: %v\n", err)
	}
	return err
}

// logTo sends klog's output to w, the command's stderr stream, instead of
// the process's stderr or any file, and returns the function that undoes it.
func logTo(w io.Writer) func() {
	// klog applies -v itself before a message reaches the logger; the logger's
	// own threshold must not drop what -v let through (client-go logs requests
	// at 6-10).
	logger := textlogger.NewLogger(textlogger.NewConfig(textlogger.Output(w), textlogger.Verbosity(100)))
	klog.SetLoggerWithOptions(logger, klog.WriteKlogBuffer(func(b []byte) { _, _ = w.Write(b) }))
	return func() {
		klog.Flush()
		klog.ClearLogger()
	}
}
