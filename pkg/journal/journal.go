// Package journal records every change edgeadm makes to a host, before it
// makes it, with what is needed to undo it; and undoes those changes in
// reverse, for a failed join's rollback and for reset.
//
// A Journal is itself a host.Host: it wraps the Host that makes the changes
// and records each mutation on the way through. Its files live on the same
// host, under Paths.JournalDir (mode 0700, entries 0600, one file per entry,
// each written atomically and synced) and Paths.BackupDir (the previous
// content of every file it replaced or removed). So whatever moment a
// SIGKILL strikes, the journal on disk describes every change that may have
// been made, and replaying it backwards leaves the host as it was.
//
// Runs: each invocation that changes the host is a run with its own number.
// A failed run rolls back its own entries; reset rolls back all of them.
package journal

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/edgeadm/edgeadm/pkg/host"
)

const (
	entryPrefix  = "entry-"
	runPrefix    = "run-"
	completeFile = "complete.json"
	dirMode      = 0o700
)

// RunInfo describes one run: which command made it and with which
// parameters (never secrets).
type RunInfo struct {
	Run     int             `json:"run"`
	Command string          `json:"command"`
	Params  json.RawMessage `json:"params,omitempty"`
	Started time.Time       `json:"started"`
}

// Completion marks a run that finished what it set out to do.
type Completion struct {
	Run      int             `json:"run"`
	Command  string          `json:"command"`
	Params   json.RawMessage `json:"params,omitempty"`
	Finished time.Time       `json:"finished"`
}

// Journal is a host.Host that records each mutation before passing it to
// the host it wraps.
type Journal struct {
	h host.Host
	p host.Paths

	mu         sync.Mutex
	entries    []Entry
	runs       []RunInfo
	completion *Completion
	next       int // next entry number
	cur        RunInfo
	started    bool // cur's header is on disk
	phase      string
	// Now is the clock; tests may replace it.
	Now func() time.Time
}

var _ host.Host = (*Journal)(nil)

// Open reads the journal kept on h. No journal is an empty one: nothing is
// written until the first change is recorded.
func Open(h host.Host) (*Journal, error) {
	j := &Journal{h: h, p: h.Paths(), next: 1, Now: time.Now}
	names, err := h.ReadDir(j.p.JournalDir)
	if errors.Is(err, fs.ErrNotExist) {
		return j, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read the journal in %s: %w", j.p.JournalDir, err)
	}
	var errs []error
	for _, name := range names {
		p := path.Join(j.p.JournalDir, name)
		switch {
		case strings.HasPrefix(name, entryPrefix) && strings.HasSuffix(name, ".json"):
			var e Entry
			if err := readJSON(h, p, &e); err != nil {
				errs = append(errs, err)
				continue
			}
			j.entries = append(j.entries, e)
			j.next = max(j.next, e.Seq+1)
		case strings.HasPrefix(name, runPrefix) && strings.HasSuffix(name, ".json"):
			var r RunInfo
			if err := readJSON(h, p, &r); err != nil {
				errs = append(errs, err)
				continue
			}
			j.runs = append(j.runs, r)
		case name == completeFile:
			var c Completion
			if err := readJSON(h, p, &c); err != nil {
				errs = append(errs, err)
				continue
			}
			j.completion = &c
		}
	}
	slices.SortFunc(j.entries, func(a, b Entry) int { return a.Seq - b.Seq })
	slices.SortFunc(j.runs, func(a, b RunInfo) int { return a.Run - b.Run })
	if len(errs) > 0 {
		// The readable part is still returned: reset undoes what it can.
		return j, fmt.Errorf("the journal in %s is damaged: %w", j.p.JournalDir, errors.Join(errs...))
	}
	return j, nil
}

func readJSON(h host.Host, p string, v any) error {
	data, err := h.ReadFile(p)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("%s: %w", p, err)
	}
	return nil
}

// Empty says whether the journal records nothing at all.
func (j *Journal) Empty() bool {
	j.mu.Lock()
	defer j.mu.Unlock()
	return len(j.entries) == 0 && len(j.runs) == 0 && j.completion == nil
}

// Entries returns the recorded entries, oldest first.
func (j *Journal) Entries() []Entry {
	j.mu.Lock()
	defer j.mu.Unlock()
	return slices.Clone(j.entries)
}

// Runs returns the recorded runs, oldest first.
func (j *Journal) Runs() []RunInfo {
	j.mu.Lock()
	defer j.mu.Unlock()
	return slices.Clone(j.runs)
}

// Completion returns the completion record, nil when no run completed.
func (j *Journal) Completion() *Completion {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.completion
}

// Begin starts a new run. Nothing is written until its first change.
func (j *Journal) Begin(command string, params any) (int, error) {
	raw, err := json.Marshal(params)
	if err != nil {
		return 0, err
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	n := 1
	for _, r := range j.runs {
		n = max(n, r.Run+1)
	}
	for _, e := range j.entries {
		n = max(n, e.Run+1)
	}
	j.cur = RunInfo{Run: n, Command: command, Params: raw, Started: j.Now().UTC()}
	j.started = false
	return n, nil
}

// CurrentRun is the number of the current run (0 before Begin).
func (j *Journal) CurrentRun() int {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.cur.Run
}

// SetPhase names the phase the following entries belong to.
func (j *Journal) SetPhase(name string) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.phase = name
}

// Complete records that the current run finished.
func (j *Journal) Complete() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if err := j.ensureStarted(); err != nil {
		return err
	}
	c := Completion{Run: j.cur.Run, Command: j.cur.Command, Params: j.cur.Params, Finished: j.Now().UTC()}
	if err := j.writeJSON(path.Join(j.p.JournalDir, completeFile), c); err != nil {
		return err
	}
	j.completion = &c
	return nil
}

// ensureStarted creates the journal's directories and the current run's
// header the first time something is recorded. Called with j.mu held.
func (j *Journal) ensureStarted() error {
	if j.cur.Run == 0 {
		return errors.New("journal: a change was made before Begin")
	}
	if j.started {
		return nil
	}
	for _, d := range []string{j.p.EdgeadmDir, j.p.JournalDir, j.p.BackupDir} {
		if err := j.h.MkdirAll(d, dirMode); err != nil {
			return fmt.Errorf("create the journal: %w", err)
		}
	}
	if err := j.writeJSON(path.Join(j.p.JournalDir, runName(j.cur.Run)), j.cur); err != nil {
		return err
	}
	j.runs = append(j.runs, j.cur)
	j.started = true
	return nil
}

func runName(run int) string                 { return fmt.Sprintf("%s%06d.json", runPrefix, run) }
func entryName(seq int) string               { return fmt.Sprintf("%s%06d.json", entryPrefix, seq) }
func backupName(seq int) string              { return strconv.Itoa(seq) }
func (j *Journal) backupPath(seq int) string { return path.Join(j.p.BackupDir, backupName(seq)) }

func (j *Journal) writeJSON(p string, v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	if err := j.h.WriteFile(p, append(data, '\n'), host.Private); err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	return nil
}

// record writes e to disk, synced, before the caller makes the change.
// prepare, when set, runs after the entry has its number and before it is
// written (to save a backup named after it). Called with j.mu held.
func (j *Journal) record(e Entry, prepare func(*Entry) error) error {
	if err := j.ensureStarted(); err != nil {
		return err
	}
	e.Seq, e.Run, e.Phase, e.Time = j.next, j.cur.Run, j.phase, j.Now().UTC()
	if prepare != nil {
		if err := prepare(&e); err != nil {
			return err
		}
	}
	if err := j.writeJSON(path.Join(j.p.JournalDir, entryName(e.Seq)), e); err != nil {
		return err
	}
	j.next++
	j.entries = append(j.entries, e)
	return nil
}

// forget removes an undone entry and its backup from disk and memory.
func (j *Journal) forget(e Entry) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	// The entry first: a kill between the two leaves an unused backup,
	// which the final cleanup removes, never an entry without its backup.
	if err := j.h.Remove(path.Join(j.p.JournalDir, entryName(e.Seq))); err != nil {
		return err
	}
	if e.Prior != nil && e.Prior.Backup != "" {
		if err := j.h.Remove(e.Prior.Backup); err != nil {
			return err
		}
	}
	j.entries = slices.DeleteFunc(j.entries, func(x Entry) bool { return x.Seq == e.Seq })
	return nil
}

// forgetRun removes a run's header once none of its entries remain.
func (j *Journal) forgetRun(run int) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	for _, e := range j.entries {
		if e.Run == run {
			return nil
		}
	}
	if err := j.h.Remove(path.Join(j.p.JournalDir, runName(run))); err != nil {
		return err
	}
	j.runs = slices.DeleteFunc(j.runs, func(r RunInfo) bool { return r.Run == run })
	if j.cur.Run == run {
		j.started = false
	}
	return nil
}

// SameParams says whether two recorded parameter sets are equal, however
// they were indented.
func SameParams(a, b json.RawMessage) bool {
	var ca, cb bytes.Buffer
	if json.Compact(&ca, a) != nil || json.Compact(&cb, b) != nil {
		return false
	}
	return bytes.Equal(ca.Bytes(), cb.Bytes())
}
