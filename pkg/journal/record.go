package journal

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"path"

	"github.com/edgeadm/edgeadm/pkg/checksum"
	"github.com/edgeadm/edgeadm/pkg/host"
)

// The read half passes straight through.

func (j *Journal) Paths() host.Paths                     { return j.p }
func (j *Journal) ReadFile(p string) ([]byte, error)     { return j.h.ReadFile(p) }
func (j *Journal) Lstat(p string) (host.FileInfo, error) { return j.h.Lstat(p) }
func (j *Journal) ReadDir(p string) ([]string, error)    { return j.h.ReadDir(p) }
func (j *Journal) UnitState(ctx context.Context, u string) (host.UnitState, error) {
	return j.h.UnitState(ctx, u)
}
func (j *Journal) ReadSysctl(k string) (string, error) { return j.h.ReadSysctl(k) }
func (j *Journal) ModuleLoaded(n string) (bool, error) { return j.h.ModuleLoaded(n) }
func (j *Journal) Mounts() ([]string, error)           { return j.h.Mounts() }
func (j *Journal) Output(ctx context.Context, c host.Command) ([]byte, error) {
	return j.h.Output(ctx, c)
}

// prior reads what is at p now. Called with j.mu held.
func (j *Journal) prior(p string) (*Prior, error) {
	fi, err := j.h.Lstat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return &Prior{Exists: false}, nil
	}
	if err != nil {
		return nil, err
	}
	return &Prior{Exists: true, Kind: fi.Kind, Mode: fi.Mode, UID: fi.UID, GID: fi.GID, Target: fi.Target}, nil
}

// backup saves the current content of p, named after e, and notes it in e.
func (j *Journal) backup(p string) func(*Entry) error {
	return func(e *Entry) error {
		if e.Prior == nil || e.Prior.Kind != host.KindFile {
			return nil
		}
		data, err := j.h.ReadFile(p)
		if err != nil {
			return fmt.Errorf("back up %s: %w", p, err)
		}
		b := j.backupPath(e.Seq)
		if err := j.h.WriteFile(b, data, host.Private); err != nil {
			return fmt.Errorf("back up %s: %w", p, err)
		}
		e.Prior.Backup = b
		return nil
	}
}

func sameMeta(pr *Prior, f host.File) bool {
	return pr.Exists && pr.Kind == host.KindFile && pr.Mode == f.Mode.Perm() && pr.UID == f.UID && pr.GID == f.GID
}

func (j *Journal) writeEntry(p string, f host.File, same func() bool) (skip bool, err error) {
	pr, err := j.prior(p)
	if err != nil {
		return false, err
	}
	if pr.Exists && pr.Kind != host.KindFile && pr.Kind != host.KindSymlink {
		return false, fmt.Errorf("write %s: a %s is in the way", p, pr.Kind)
	}
	if sameMeta(pr, f) && same() {
		return true, nil // already so: nothing to change, nothing to undo
	}
	return false, j.record(Entry{Op: OpWrite, Path: p, Prior: pr}, j.backup(p))
}

func (j *Journal) WriteFile(p string, data []byte, f host.File) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	skip, err := j.writeEntry(p, f, func() bool {
		cur, err := j.h.ReadFile(p)
		return err == nil && bytes.Equal(cur, data)
	})
	if err != nil || skip {
		return err
	}
	return j.h.WriteFile(p, data, f)
}

func (j *Journal) InstallFile(p, src string, f host.File) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	skip, err := j.writeEntry(p, f, func() bool {
		want := f.SHA256
		if want == "" {
			var err error
			if want, err = checksum.File(src); err != nil {
				return false
			}
		}
		cur, err := j.h.ReadFile(p)
		sum := sha256.Sum256(cur)
		return err == nil && hex.EncodeToString(sum[:]) == want
	})
	if err != nil || skip {
		return err
	}
	return j.h.InstallFile(p, src, f)
}

func (j *Journal) MkdirAll(p string, mode fs.FileMode) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if err := host.CheckPath(p); err != nil {
		return err
	}
	var created []string
	for d := p; d != "/"; d = path.Dir(d) {
		fi, err := j.h.Lstat(d)
		if err == nil {
			if fi.Kind != host.KindDir {
				return fmt.Errorf("mkdir %s: %s is a %s", p, d, fi.Kind)
			}
			break
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		created = append([]string{d}, created...)
	}
	if len(created) == 0 {
		return nil
	}
	if err := j.record(Entry{Op: OpMkdir, Path: p, Created: created}, nil); err != nil {
		return err
	}
	return j.h.MkdirAll(p, mode)
}

func (j *Journal) Remove(p string) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.remove(p, j.h.Remove)
}

func (j *Journal) remove(p string, rm func(string) error) error {
	pr, err := j.prior(p)
	if err != nil {
		return err
	}
	if !pr.Exists {
		return nil
	}
	if pr.Kind == host.KindDir {
		names, err := j.h.ReadDir(p)
		if err != nil {
			return err
		}
		if len(names) > 0 {
			return fmt.Errorf("remove %s: the journal cannot keep a backup of a whole directory tree", p)
		}
	}
	if pr.Kind == host.KindOther {
		return fmt.Errorf("remove %s: the journal cannot keep a backup of a %s", p, pr.Kind)
	}
	if err := j.record(Entry{Op: OpRemove, Path: p, Prior: pr}, j.backup(p)); err != nil {
		return err
	}
	return rm(p)
}

// RemoveAll is recorded only for what the journal can restore: a file, a
// symlink or an empty directory.
func (j *Journal) RemoveAll(p string) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.remove(p, j.h.RemoveAll)
}

func (j *Journal) Symlink(target, p string) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	pr, err := j.prior(p)
	if err != nil {
		return err
	}
	if pr.Exists && pr.Kind == host.KindSymlink && pr.Target == target {
		return nil
	}
	if pr.Exists && pr.Kind != host.KindFile && pr.Kind != host.KindSymlink {
		return fmt.Errorf("symlink %s: a %s is in the way", p, pr.Kind)
	}
	if err := j.record(Entry{Op: OpSymlink, Path: p, Prior: pr}, j.backup(p)); err != nil {
		return err
	}
	return j.h.Symlink(target, p)
}

func (j *Journal) SetMode(p string, f host.File) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	pr, err := j.prior(p)
	if err != nil {
		return err
	}
	if !pr.Exists {
		return j.h.SetMode(p, f) // fails as it should
	}
	if (pr.Kind == host.KindSymlink || pr.Mode == f.Mode.Perm()) && pr.UID == f.UID && pr.GID == f.GID {
		return nil
	}
	if err := j.record(Entry{Op: OpSetMode, Path: p, Prior: pr}, nil); err != nil {
		return err
	}
	return j.h.SetMode(p, f)
}

func (j *Journal) SetBlock(p string, m host.Marker, content []byte) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	data, err := j.h.ReadFile(p)
	exists := err == nil
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	out, added, err := host.SetBlockBytes(data, m, content)
	if err != nil {
		return fmt.Errorf("set the edgeadm block in %s: %w (fix the file by hand)", p, err)
	}
	if exists && bytes.Equal(out, data) {
		return nil
	}
	e := Entry{Op: OpSetBlock, Path: p, Marker: &m, PriorFileExists: exists, AddedNewline: added}
	if b, found, _ := host.FindBlock(data, m); found {
		s := string(b.Content)
		e.PriorBlock = &s
	}
	if err := j.record(e, nil); err != nil {
		return err
	}
	return j.h.SetBlock(p, m, content)
}

func (j *Journal) RemoveBlock(p string, m host.Marker, addedNewline bool) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	data, err := j.h.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	b, found, err := host.FindBlock(data, m)
	if err != nil || !found {
		return err
	}
	s := string(b.Content)
	if err := j.record(Entry{Op: OpRemoveBlock, Path: p, Marker: &m, PriorBlock: &s, PriorFileExists: true}, nil); err != nil {
		return err
	}
	return j.h.RemoveBlock(p, m, addedNewline)
}

func (j *Journal) Systemctl(ctx context.Context, action host.UnitAction, unit string) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	e := Entry{Op: OpSystemctl, Action: action, Unit: unit}
	if action != host.DaemonReload {
		s, err := j.h.UnitState(ctx, unit)
		if err != nil {
			return err
		}
		switch {
		case action == host.Enable && s.IsEnabled(),
			action == host.Disable && !s.IsEnabled(),
			action == host.Start && s.IsActive(),
			action == host.Stop && !s.IsActive():
			return nil // already so
		}
		e.PriorUnit = &s
	}
	if err := j.record(e, nil); err != nil {
		return err
	}
	return j.h.Systemctl(ctx, action, unit)
}

func (j *Journal) WriteSysctl(key, value string) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	prior, err := j.h.ReadSysctl(key)
	if err != nil {
		return err
	}
	if prior == value {
		return nil
	}
	if err := j.record(Entry{Op: OpSysctl, Key: key, Value: value, PriorValue: prior}, nil); err != nil {
		return err
	}
	return j.h.WriteSysctl(key, value)
}

func (j *Journal) LoadModule(ctx context.Context, name string) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if loaded, err := j.h.ModuleLoaded(name); err != nil || loaded {
		return err
	}
	if err := j.record(Entry{Op: OpLoadModule, Module: name}, nil); err != nil {
		return err
	}
	return j.h.LoadModule(ctx, name)
}

func (j *Journal) UnloadModule(ctx context.Context, name string) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if loaded, err := j.h.ModuleLoaded(name); err != nil || !loaded {
		return err
	}
	if err := j.record(Entry{Op: OpUnloadMod, Module: name}, nil); err != nil {
		return err
	}
	return j.h.UnloadModule(ctx, name)
}

// Unmount is recorded so that the report is complete; a mount cannot be
// brought back by an undo.
func (j *Journal) Unmount(p string) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if err := j.record(Entry{Op: OpUnmount, Path: p}, nil); err != nil {
		return err
	}
	return j.h.Unmount(p)
}

func (j *Journal) Run(ctx context.Context, c host.Command) ([]byte, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if err := j.record(Entry{Op: OpRun, Command: &c}, nil); err != nil {
		return nil, err
	}
	return j.h.Run(ctx, c)
}

func (j *Journal) Residue(ctx context.Context, r host.Residue) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	snap := takeSnapshot(ctx, j.h, r)
	return j.record(Entry{Op: OpResidue, Residue: &r, Snapshot: snap}, nil)
}
