// Package preflight runs checks that look at a host (or a cluster) before a
// command changes anything, kubeadm-style: each check is a value with a name,
// its findings are printed as "[WARNING Name]: ..." or "[ERROR Name]: ...",
// and --ignore-preflight-errors turns chosen errors into warnings.
package preflight

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
)

// Check is one preflight check. It must not change anything.
type Check interface {
	// Name is what --ignore-preflight-errors takes, such as "Port-10250".
	Name() string
	// Check returns its findings; each error says how to fix it.
	Check(ctx context.Context) (warnings, errs []error)
}

// Func makes a Check from a function.
type Func struct {
	N string
	F func(ctx context.Context) (warnings, errs []error)
}

func (f Func) Name() string { return f.N }

func (f Func) Check(ctx context.Context) ([]error, []error) { return f.F(ctx) }

// Failed is the error of a run with errors that were not ignored.
type Failed struct {
	// Errors are the "[ERROR Name]: message" lines.
	Errors []string
}

func (e *Failed) Error() string {
	return fmt.Sprintf("preflight found %d error(s), nothing was changed:\n\t%s\nfix them, or make a check non-fatal with --ignore-preflight-errors=<name>,... (all: every check)",
		len(e.Errors), strings.Join(e.Errors, "\n\t"))
}

// ParseIgnore normalises --ignore-preflight-errors values: names are
// compared case-insensitively, and "all" ignores every check. Mixing "all"
// with names is a mistake kubeadm rejects too.
func ParseIgnore(values []string) (map[string]bool, error) {
	set := map[string]bool{}
	for _, v := range values {
		for _, n := range strings.Split(v, ",") {
			n = strings.ToLower(strings.TrimSpace(n))
			if n != "" {
				set[n] = true
			}
		}
	}
	if set["all"] && len(set) > 1 {
		return nil, errors.New(`--ignore-preflight-errors: "all" cannot be combined with check names`)
	}
	return set, nil
}

// Result is what a run found.
type Result struct {
	Warnings []string // "[WARNING Name]: message", ignored errors included
	Errors   []string // "[ERROR Name]: message"
}

// Run runs every check (a failed one does not stop the others), prints each
// finding to w as it comes, and returns a *Failed error when any error was
// not ignored.
func Run(ctx context.Context, checks []Check, ignore map[string]bool, w io.Writer) (Result, error) {
	var res Result
	for _, c := range checks {
		warns, errs := c.Check(ctx)
		for _, wn := range warns {
			line := fmt.Sprintf("[WARNING %s]: %v", c.Name(), wn)
			res.Warnings = append(res.Warnings, line)
			fmt.Fprintln(w, "\t"+line)
		}
		ignored := ignore["all"] || ignore[strings.ToLower(c.Name())]
		for _, e := range errs {
			if ignored {
				line := fmt.Sprintf("[WARNING %s]: %v (ignored: --ignore-preflight-errors)", c.Name(), e)
				res.Warnings = append(res.Warnings, line)
				fmt.Fprintln(w, "\t"+line)
				continue
			}
			line := fmt.Sprintf("[ERROR %s]: %v", c.Name(), e)
			res.Errors = append(res.Errors, line)
			fmt.Fprintln(w, "\t"+line)
		}
	}
	if len(res.Errors) > 0 {
		return res, &Failed{Errors: slices.Clone(res.Errors)}
	}
	return res, nil
}
