package journal

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/edgeadm/edgeadm/pkg/host"
)

// Step is one undo as a rollback reports it.
type Step struct {
	// Seq and Phase name the entry undone; Seq is 0 for the final steps
	// that are not entries (daemon-reload, removing the journal).
	Seq   int
	Phase string
	// Undo says what was (or, in a dry run, would be) done.
	Undo string
	// Note adds what the user should know: a step skipped and why.
	Note string
	Err  error
}

// RollbackOptions say what to roll back and how.
type RollbackOptions struct {
	// Host makes the changes; the journal's own host when nil. Pass a
	// host.DryRun (and set DryRun) to list the steps without making them.
	Host host.Host
	// DryRun keeps the journal as it is.
	DryRun bool
	// Run limits the rollback to one run's entries; 0 means all (reset).
	Run int
	// Report is told about each step as it ends.
	Report func(Step)
}

// Rollback undoes the selected entries, newest first. It never stops at a
// failed step: every step is tried and reported, and the failures come back
// joined. An undone entry is removed from the journal; one whose undo failed
// stays, so a later reset tries it again. When nothing remains, the journal
// and edgeadm's state directory go too.
func (j *Journal) Rollback(ctx context.Context, o RollbackOptions) error {
	h := o.Host
	if h == nil {
		h = j.h
	}
	report := o.Report
	if report == nil {
		report = func(Step) {}
	}
	var (
		errs   []error
		reload bool
		runs   []int
	)
	entries := j.Entries()
	for _, e := range slices.Backward(entries) {
		if o.Run != 0 && e.Run != o.Run {
			continue
		}
		if !slices.Contains(runs, e.Run) {
			runs = append(runs, e.Run)
		}
		st := Step{Seq: e.Seq, Phase: e.Phase, Undo: undoString(e)}
		st.Err = undo(ctx, h, e, func(n string) { st.Note = joinNote(st.Note, n) })
		if e.Op == OpSystemctl && e.Action == host.DaemonReload {
			reload = true
		}
		if st.Err != nil {
			st.Err = fmt.Errorf("undo %q (step %d): %w", e.String(), e.Seq, st.Err)
			errs = append(errs, st.Err)
		} else if !o.DryRun {
			if err := j.forget(e); err != nil {
				st.Err = fmt.Errorf("step %d was undone but could not be struck from the journal: %w", e.Seq, err)
				errs = append(errs, st.Err)
			}
		}
		report(st)
	}
	if reload {
		st := Step{Undo: "systemctl daemon-reload (so systemd forgets the removed units)"}
		if st.Err = h.Systemctl(ctx, host.DaemonReload, ""); st.Err != nil {
			errs = append(errs, st.Err)
		}
		report(st)
	}
	if o.DryRun {
		if len(entries) > 0 && o.Run == 0 {
			report(Step{Undo: "remove " + j.p.EdgeadmDir})
		}
		return errors.Join(errs...)
	}
	for _, r := range runs {
		if err := j.forgetRun(r); err != nil {
			errs = append(errs, err)
		}
	}
	if len(j.Entries()) == 0 && len(errs) == 0 {
		st := Step{Undo: "remove " + j.p.EdgeadmDir}
		if _, err := j.h.Lstat(j.p.EdgeadmDir); err == nil {
			st.Err = j.h.RemoveAll(j.p.EdgeadmDir)
			if st.Err != nil {
				errs = append(errs, st.Err)
			}
			report(st)
		}
		j.mu.Lock()
		j.runs, j.completion, j.started = nil, nil, false
		j.mu.Unlock()
	}
	return errors.Join(errs...)
}

func joinNote(a, b string) string {
	if a == "" {
		return b
	}
	return a + "; " + b
}

// undoString says what undoing e does.
func undoString(e Entry) string {
	switch e.Op {
	case OpWrite, OpSymlink, OpRemove:
		switch {
		case !e.Prior.Exists:
			return "remove " + e.Path + " (it was not there before)"
		case e.Prior.Kind == host.KindSymlink:
			return fmt.Sprintf("restore the link %s -> %s", e.Path, e.Prior.Target)
		case e.Prior.Kind == host.KindDir:
			return "restore the directory " + e.Path
		default:
			return "restore " + e.Path + " from its backup"
		}
	case OpSetMode:
		return fmt.Sprintf("set %s back to mode %04o, owner %d:%d", e.Path, e.Prior.Mode, e.Prior.UID, e.Prior.GID)
	case OpMkdir:
		return "remove the directories " + strings.Join(e.Created, ", ") + " (they were not there before)"
	case OpSetBlock:
		if e.PriorBlock != nil {
			return fmt.Sprintf("restore the previous %q block in %s", e.Marker.Begin, e.Path)
		}
		return fmt.Sprintf("remove the %q block from %s", e.Marker.Begin, e.Path)
	case OpRemoveBlock:
		return fmt.Sprintf("restore the %q block in %s", e.Marker.Begin, e.Path)
	case OpSystemctl:
		switch e.Action {
		case host.DaemonReload:
			return "systemctl daemon-reload (done once at the end)"
		case host.Enable:
			return "systemctl disable " + e.Unit
		case host.Disable:
			return "systemctl enable " + e.Unit
		case host.Start:
			return "systemctl stop " + e.Unit
		case host.Stop:
			return "systemctl start " + e.Unit
		case host.Restart:
			return "systemctl stop " + e.Unit + " if it was not running before"
		}
	case OpSysctl:
		return fmt.Sprintf("set sysctl %s back to %s", e.Key, e.PriorValue)
	case OpLoadModule:
		return "unload kernel module " + e.Module
	case OpUnloadMod:
		return "load kernel module " + e.Module
	case OpUnmount:
		return "nothing for the unmount of " + e.Path
	case OpRun:
		if e.Command.Undo != nil {
			return "run " + e.Command.Undo.String()
		}
		return "nothing for: " + e.Command.String()
	case OpResidue:
		return "remove " + e.Residue.String() + " since join"
	}
	return "undo " + string(e.Op)
}

// undo reverses one entry through h. Each undo is idempotent: it brings the
// host to the recorded prior state whether or not the change was made.
func undo(ctx context.Context, h host.Host, e Entry, note func(string)) error {
	switch e.Op {
	case OpWrite, OpSymlink, OpRemove:
		return restore(h, e.Path, e.Prior)
	case OpSetMode:
		if _, err := h.Lstat(e.Path); err != nil {
			note(e.Path + " is gone")
			return nil
		}
		return h.SetMode(e.Path, host.File{Mode: e.Prior.Mode, UID: e.Prior.UID, GID: e.Prior.GID})
	case OpMkdir:
		var errs []error
		for _, d := range slices.Backward(e.Created) {
			names, err := h.ReadDir(d)
			if err != nil {
				continue // gone already
			}
			if len(names) > 0 {
				note(fmt.Sprintf("kept %s: it holds files edgeadm did not make (%s)", d, strings.Join(names, ", ")))
				continue
			}
			if err := h.Remove(d); err != nil {
				errs = append(errs, err)
			}
		}
		return errors.Join(errs...)
	case OpSetBlock:
		var err error
		if e.PriorBlock != nil {
			err = h.SetBlock(e.Path, *e.Marker, []byte(*e.PriorBlock))
		} else {
			err = h.RemoveBlock(e.Path, *e.Marker, e.AddedNewline)
		}
		if err != nil || e.PriorFileExists {
			return err
		}
		if data, rerr := h.ReadFile(e.Path); rerr == nil && len(data) == 0 {
			return h.Remove(e.Path)
		}
		return nil
	case OpRemoveBlock:
		return h.SetBlock(e.Path, *e.Marker, []byte(*e.PriorBlock))
	case OpSystemctl:
		switch e.Action {
		case host.DaemonReload:
			return nil
		case host.Enable:
			return ignoreMissingUnit(ctx, h, e.Unit, h.Systemctl(ctx, host.Disable, e.Unit))
		case host.Disable:
			return h.Systemctl(ctx, host.Enable, e.Unit)
		case host.Start:
			return ignoreMissingUnit(ctx, h, e.Unit, h.Systemctl(ctx, host.Stop, e.Unit))
		case host.Stop:
			return h.Systemctl(ctx, host.Start, e.Unit)
		case host.Restart:
			if e.PriorUnit != nil && !e.PriorUnit.IsActive() {
				return ignoreMissingUnit(ctx, h, e.Unit, h.Systemctl(ctx, host.Stop, e.Unit))
			}
			note(e.Unit + " was running before and is left running")
			return nil
		}
		return fmt.Errorf("unknown systemctl action %q", e.Action)
	case OpSysctl:
		return h.WriteSysctl(e.Key, e.PriorValue)
	case OpLoadModule:
		if err := h.UnloadModule(ctx, e.Module); err != nil {
			// Modules are shared with whatever else runs: one in use stays.
			note(fmt.Sprintf("left kernel module %s loaded: %v", e.Module, err))
		}
		return nil
	case OpUnloadMod:
		return h.LoadModule(ctx, e.Module)
	case OpUnmount:
		note("a mount cannot be restored")
		return nil
	case OpRun:
		if e.Command.Undo == nil {
			return nil
		}
		_, err := h.Run(ctx, *e.Command.Undo)
		return err
	case OpResidue:
		return undoResidue(ctx, h, e, note)
	}
	return fmt.Errorf("unknown journal operation %q", e.Op)
}

// ignoreMissingUnit forgives disable/stop of a unit systemd does not know
// (any more): there is nothing left to disable or stop.
func ignoreMissingUnit(ctx context.Context, h host.Host, unit string, err error) error {
	if err == nil {
		return nil
	}
	if s, serr := h.UnitState(ctx, unit); serr == nil && s.Enabled == "not-found" && !s.IsActive() {
		return nil
	}
	return err
}

// restore puts back what was at p before.
func restore(h host.Host, p string, pr *Prior) error {
	if pr == nil {
		return errors.New("no prior state recorded")
	}
	if !pr.Exists {
		// Remove takes a file, a link or an empty directory: a directory
		// that someone filled since is reported, not emptied.
		return h.Remove(p)
	}
	switch pr.Kind {
	case host.KindFile:
		data, err := h.ReadFile(pr.Backup)
		if err != nil {
			return fmt.Errorf("the backup of %s is unreadable, restore it by hand: %w", p, err)
		}
		return h.WriteFile(p, data, host.File{Mode: pr.Mode, UID: pr.UID, GID: pr.GID})
	case host.KindSymlink:
		return h.Symlink(pr.Target, p)
	case host.KindDir:
		return h.MkdirAll(p, pr.Mode)
	}
	return fmt.Errorf("cannot restore a %s at %s", pr.Kind, p)
}

// FormatStep is a step as reports print it: "[undo] <what> ... ok", with the
// note or the error.
func FormatStep(s Step) string {
	line := "\t" + s.Undo
	switch {
	case s.Err != nil:
		line += ": FAILED: " + s.Err.Error()
	case s.Note != "":
		line += ": " + s.Note
	}
	return line
}
