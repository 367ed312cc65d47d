package join

import (
	"fmt"
	"io"
	"time"

	"github.com/edgeadm/edgeadm/pkg/journal"
)

// Report is the result of a join, printed with -o json|yaml.
type Report struct {
	NodeName string `json:"nodeName"`
	Endpoint string `json:"endpoint"`
	// Server is the API server URL the node uses.
	Server string `json:"server"`
	DryRun bool   `json:"dryRun,omitempty"`
	// AlreadyJoined: the same join had completed; nothing was done.
	AlreadyJoined bool `json:"alreadyJoined,omitempty"`
	// Resumed: an interrupted join was continued.
	Resumed         bool          `json:"resumed,omitempty"`
	Phases          []PhaseReport `json:"phases"`
	Warnings        []string      `json:"warnings,omitempty"`
	DurationSeconds float64       `json:"durationSeconds"`
	Succeeded       bool          `json:"succeeded"`

	start time.Time
}

// PhaseReport is one phase of a join.
type PhaseReport struct {
	Name string `json:"name"`
	// Status is done, skipped or failed.
	Status          string  `json:"status"`
	DurationSeconds float64 `json:"durationSeconds"`
}

func (r *Report) phase(name, status string, d time.Duration) {
	if r == nil {
		return
	}
	r.Phases = append(r.Phases, PhaseReport{Name: name, Status: status, DurationSeconds: d.Seconds()})
}

func (r *Report) end(err error) {
	if r == nil {
		return
	}
	r.DurationSeconds = time.Since(r.start).Seconds()
	r.Succeeded = err == nil
}

// printReport prints the result of a join that succeeded to stdout: the
// structured report with -o, else a few lines for people.
func (d *joinData) printReport() error {
	r := d.report
	if r == nil {
		return nil
	}
	out := d.streams.Out
	if !r.Succeeded {
		return nil // a failure is one error on stderr, nothing on stdout (docs/exit-codes.md)
	}
	if d.printer != nil {
		return d.printer.Print(out, r)
	}
	switch {
	case r.DryRun:
		fmt.Fprintf(out, "Dry run: nothing was changed. Without --dry-run, this host would join %s as node %q.\n", r.Server, r.NodeName)
	case r.AlreadyJoined:
		fmt.Fprintf(out, "This host had already joined %s as node %q: nothing to do.\n", r.Server, r.NodeName)
	default:
		fmt.Fprintf(out, "This host joined the cluster at %s as node %q in %s.\n", r.Server, r.NodeName, time.Duration(r.DurationSeconds*float64(time.Second)).Round(time.Second))
		fmt.Fprintf(out, "Run \"kubectl get node %s\" on a master to see it; \"edgeadm reset\" on this host undoes the join.\n", r.NodeName)
	}
	return nil
}

// rollbackOptions print each undone step as it happens.
func rollbackOptions(w io.Writer, run int) journal.RollbackOptions {
	return journal.RollbackOptions{Run: run, Report: func(s journal.Step) { fmt.Fprintln(w, journal.FormatStep(s)) }}
}
