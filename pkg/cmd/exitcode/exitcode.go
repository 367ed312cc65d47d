// Package exitcode defines edgeadm's process exit codes and the error type
// that carries one from a command up to main, the only place that exits.
// Keep docs/exit-codes.md in step with the constants here.
package exitcode

import "errors"

// Exit codes. They are part of edgeadm's interface: scripts branch on them,
// so a value once given a meaning keeps it.
const (
	// OK: the command did what was asked.
	OK = 0
	// Failure: the command failed; the message says what and what to do.
	Failure = 1
	// Usage: the command line was wrong (unknown command or flag, bad value,
	// wrong number of arguments); nothing was done.
	Usage = 2
	// NotImplemented: the command exists in the interface but not in this
	// build; nothing was done.
	NotImplemented = 3
	// PreflightFailed is reserved for a failed preflight check (join, addon):
	// the host or cluster was inspected but not changed.
	PreflightFailed = 4
	// Refused is reserved for a command that declined to act to keep the
	// cluster safe (for example detach while edge nodes are joined) and can
	// be made to act with --force.
	Refused = 5
)

// Error is an error that tells main which exit code to use.
type Error struct {
	Code int
	Err  error
}

func (e *Error) Error() string { return e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// New wraps err so that the process exits with code. A nil err stays nil.
func New(code int, err error) error {
	if err == nil {
		return nil
	}
	return &Error{Code: code, Err: err}
}

// Code returns the exit code for err: OK for nil, the code of the outermost
// *Error in its chain, Failure for any other error.
func Code(err error) int {
	if err == nil {
		return OK
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return Failure
}
