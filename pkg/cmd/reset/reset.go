// Package reset implements "edgeadm reset": undo what "edgeadm join" did to
// this host, by replaying its journal backwards.
package reset

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/edgeadm/edgeadm/pkg/cmd"
	"github.com/edgeadm/edgeadm/pkg/cmd/exitcode"
	"github.com/edgeadm/edgeadm/pkg/host"
	"github.com/edgeadm/edgeadm/pkg/journal"
)

// packageWorkDir is where join unpacks the install package (installpkg makes
// .edgeadm-pkg-* in it and removes it when join ends; a killed join leaves it).
const (
	packageWorkDir    = "/var/tmp"
	packageWorkPrefix = ".edgeadm-pkg-"
)

type options struct {
	force  bool
	dryRun bool
}

// Deps are what the command takes from the world; tests replace them.
type Deps struct {
	Host host.Host
	Euid func() int
	// IsTerminal says whether the command's input is a terminal a person
	// can answer a question on.
	IsTerminal func(io.Reader) bool
	// Lock keeps a join or another reset off the host while this one runs;
	// nil takes no lock.
	Lock func() (unlock func(), err error)
}

// DefaultDeps are the real machine.
func DefaultDeps() Deps {
	p := host.DefaultPaths("/")
	return Deps{
		Host: host.NewReal(p),
		Lock: func() (func(), error) { return host.LockMachine(p) },
		Euid: os.Geteuid,
		IsTerminal: func(r io.Reader) bool {
			f, ok := r.(*os.File)
			return ok && term.IsTerminal(int(f.Fd()))
		},
	}
}

// NewCommand returns the "reset" command.
func NewCommand(streams cmd.IOStreams) *cobra.Command { return NewCommandWith(streams, DefaultDeps()) }

// NewCommandWith returns the "reset" command working on deps.
func NewCommandWith(streams cmd.IOStreams, deps Deps) *cobra.Command {
	o := &options{}
	c := &cobra.Command{
		Use:   "reset",
		Short: "Undo what edgeadm join did to this host",
		Long: `Undo what "edgeadm join" did to this host.

Replays the join journal (/var/lib/edgeadm) backwards: stops the kubelet, removes
its pods, stops and disables edgehub, containerd and the kubelet, removes what
they and the CNI plugins created since the join (edgehub's configuration and its
cache in /var/lib/edgehub, state directories after unmounting what
is mounted in them, iptables chains KUBE-*, CNI-* and FLANNEL-* with the rules
that jump to them, edgehub's chain EDGEHUB-KUBERNETES if a stopped edgehub left
it, network links such as cni0), restores the files join replaced
from their backups, removes the files and directories it added, its line in
/etc/hosts, its sysctls and kernel modules, and finally /var/lib/edgeadm. Only
what appeared after the join is removed: what the host had before stays.

Every step runs even when an earlier one failed, and each is reported; the exit
code is non-zero if any failed, and a later reset retries the failed ones. Reset
works after a completed, failed or interrupted join.

The Node object stays in the cluster: remove it on a master with
"kubectl delete node <name>".`,
		Args: cmd.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			return runE(c, streams, deps, o)
		},
	}
	fs := c.Flags()
	fs.BoolVarP(&o.force, "force", "f", false, "Reset without asking for confirmation.")
	fs.BoolVar(&o.dryRun, "dry-run", false, "Print what would be undone without changing anything.")
	return c
}

func runE(c *cobra.Command, streams cmd.IOStreams, deps Deps, o *options) error {
	ctx := c.Context()
	if ctx == nil {
		ctx = context.Background()
	}
	if deps.Euid() != 0 {
		return exitcode.New(exitcode.PreflightFailed,
			errors.New("[ERROR IsPrivilegedUser]: edgeadm reset changes system files and services: run it as root (sudo edgeadm reset); nothing was changed"))
	}
	if deps.Lock != nil && !o.dryRun {
		unlock, err := deps.Lock()
		if err != nil {
			return err
		}
		defer unlock()
	}
	h := deps.Host
	p := h.Paths()
	errOut := streams.ErrOut
	j, jerr := journal.Open(h)
	if j == nil {
		return jerr
	}
	if jerr != nil {
		fmt.Fprintf(errOut, "[WARNING Journal]: %v\n\tThe readable entries are undone; check what the damaged ones recorded by hand.\n", jerr)
	}
	stale := staleWorkDirs(h)
	_, dirErr := h.Lstat(p.EdgeadmDir)
	if j.Empty() && len(stale) == 0 && dirErr != nil {
		fmt.Fprintf(streams.Out, "Nothing to reset: edgeadm join has not changed this host (no journal in %s).\n", p.JournalDir)
		return nil
	}
	node, endpoint := lastJoin(j)
	fmt.Fprintf(errOut, "[reset] %d recorded change(s) of edgeadm join to undo on this host (node %q, cluster %s)\n", len(j.Entries()), node, endpoint)
	if !o.force && !o.dryRun {
		if err := confirm(streams, deps); err != nil {
			return err
		}
	}

	target := h
	if o.dryRun {
		target = host.NewDryRun(h, errOut)
	}
	var errs []error
	fmt.Fprintln(errOut, "[reset] Undoing the join, newest change first")
	err := j.Rollback(ctx, journal.RollbackOptions{
		Host:   target,
		DryRun: o.dryRun,
		Report: func(s journal.Step) { fmt.Fprintln(errOut, journal.FormatStep(s)) },
	})
	if err != nil {
		errs = append(errs, err)
	}
	if step, ok := removeEdgeHubRedirect(ctx, h, target); ok {
		if step.Err != nil {
			errs = append(errs, step.Err)
		}
		fmt.Fprintln(errOut, journal.FormatStep(step))
	}
	// What a join killed in the middle of fetching its package left behind.
	for _, d := range stale {
		step := journal.Step{Undo: "remove " + d + " (the install package of an interrupted join)"}
		step.Err = target.RemoveAll(d)
		if step.Err != nil {
			errs = append(errs, step.Err)
		}
		fmt.Fprintln(errOut, journal.FormatStep(step))
	}
	// A journal with nothing left to undo (a join killed before its first
	// change, or a damaged one) still leaves edgeadm's directory.
	if len(errs) == 0 && len(j.Entries()) == 0 {
		if _, err := h.Lstat(p.EdgeadmDir); err == nil && !o.dryRun {
			step := journal.Step{Undo: "remove " + p.EdgeadmDir}
			if step.Err = target.RemoveAll(p.EdgeadmDir); step.Err != nil {
				errs = append(errs, step.Err)
			}
			fmt.Fprintln(errOut, journal.FormatStep(step))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("reset did not finish (%d step(s) failed, see above); fix what they name and run \"edgeadm reset\" again: %w",
			countFailed(errs), errors.Join(errs...))
	}
	out := streams.Out
	if o.dryRun {
		fmt.Fprintln(out, "Dry run: nothing was changed; the steps above are what reset would do.")
		return nil
	}
	fmt.Fprintln(out, "This host is reset: what edgeadm join changed is undone.")
	if node != "" {
		fmt.Fprintf(out, "The Node object stays in the cluster: on a master, run \"kubectl delete node %s\".\n", node)
	} else {
		fmt.Fprintln(out, "The Node object stays in the cluster: on a master, run \"kubectl delete node <name>\".")
	}
	return nil
}

func countFailed(errs []error) int {
	n := 0
	for _, e := range errs {
		if u, ok := e.(interface{ Unwrap() []error }); ok {
			n += len(u.Unwrap())
		} else {
			n++
		}
	}
	return n
}

// confirm asks on the command's input. Without a terminal nobody can
// answer, and resetting unasked would be wrong: refuse, and say how to force.
func confirm(streams cmd.IOStreams, deps Deps) error {
	if streams.In == nil || !deps.IsTerminal(streams.In) {
		return exitcode.New(exitcode.Refused, errors.New(
			"edgeadm reset asks for confirmation, but its input is not a terminal: run it with -f (--force) to reset without asking; nothing was changed"))
	}
	fmt.Fprint(streams.ErrOut, "[reset] Undo the join on this host? [y/N]: ")
	line, err := bufio.NewReader(streams.In).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	switch strings.ToLower(strings.TrimSpace(line)) {
	case "y", "yes":
		return nil
	}
	return exitcode.New(exitcode.Refused, errors.New("reset aborted: nothing was changed"))
}

// lastJoin names the node and cluster of the most recent join run.
func lastJoin(j *journal.Journal) (node, endpoint string) {
	runs := j.Runs()
	if len(runs) == 0 {
		return "", "unknown"
	}
	var p struct {
		Endpoint string `json:"endpoint"`
		NodeName string `json:"nodeName"`
	}
	_ = json.Unmarshal(runs[len(runs)-1].Params, &p)
	return p.NodeName, p.Endpoint
}

// staleWorkDirs are install package copies a killed join left.
func staleWorkDirs(h host.Host) []string {
	names, err := h.ReadDir(packageWorkDir)
	if err != nil {
		return nil
	}
	var out []string
	for _, n := range names {
		if strings.HasPrefix(n, packageWorkPrefix) {
			out = append(out, path.Join(packageWorkDir, n))
		}
	}
	return out
}
