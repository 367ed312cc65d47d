// Package cmd holds what every edgeadm command shares: the IO streams it is
// given instead of touching os.Stdin/Stdout/Stderr, and the helpers that turn
// argument and "not built yet" failures into errors with the right exit code.
package cmd

import (
	"io"
	"os"
)

// IOStreams are the streams a command reads from and writes to. Results go to
// Out, progress and logs to ErrOut. Tests pass buffers.
type IOStreams struct {
	In     io.Reader
	Out    io.Writer
	ErrOut io.Writer
}

// StandardIOStreams returns the process's stdin, stdout and stderr.
func StandardIOStreams() IOStreams {
	return IOStreams{In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr}
}
