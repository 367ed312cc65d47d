package host

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"sync"
)

// DryRun reads through to another Host (normally Real) and changes nothing:
// each mutation is printed to W as a "would ..." line and kept in Actions.
// Because nothing changes, a later read does not see an earlier "would".
type DryRun struct {
	Reader
	W io.Writer

	mu      sync.Mutex
	actions []string
}

var _ Host = (*DryRun)(nil)

// NewDryRun returns a dry-run host that reads from r and prints to w.
func NewDryRun(r Reader, w io.Writer) *DryRun { return &DryRun{Reader: r, W: w} }

// Actions are the "would ..." lines so far, in order.
func (d *DryRun) Actions() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.actions...)
}

func (d *DryRun) would(format string, args ...any) error {
	line := "would " + fmt.Sprintf(format, args...)
	d.mu.Lock()
	d.actions = append(d.actions, line)
	d.mu.Unlock()
	if d.W != nil {
		fmt.Fprintf(d.W, "[dry-run] %s\n", line)
	}
	return nil
}

func describe(f File) string {
	return fmt.Sprintf("mode %04o, owner %d:%d", f.Mode.Perm(), f.UID, f.GID)
}

func (d *DryRun) WriteFile(p string, data []byte, f File) error {
	if err := CheckPath(p); err != nil {
		return err
	}
	return d.would("write %s (%d bytes, %s)", p, len(data), describe(f))
}

func (d *DryRun) InstallFile(p, src string, f File) error {
	if err := CheckPath(p); err != nil {
		return err
	}
	return d.would("install %s from %s (%s)", p, src, describe(f))
}

func (d *DryRun) MkdirAll(p string, mode fs.FileMode) error {
	if err := CheckPath(p); err != nil {
		return err
	}
	if fi, err := d.Lstat(p); err == nil && fi.Kind == KindDir {
		return nil
	}
	return d.would("create directory %s (mode %04o)", p, mode.Perm())
}

func (d *DryRun) Remove(p string) error {
	if _, err := d.Lstat(p); err != nil {
		return nil // nothing there: nothing would happen
	}
	return d.would("remove %s", p)
}

func (d *DryRun) RemoveAll(p string) error {
	if _, err := d.Lstat(p); err != nil {
		return nil
	}
	return d.would("remove %s and everything in it", p)
}

func (d *DryRun) Symlink(target, p string) error {
	return d.would("link %s -> %s", p, target)
}

func (d *DryRun) SetMode(p string, f File) error {
	return d.would("set %s of %s", describe(f), p)
}

func (d *DryRun) SetBlock(p string, m Marker, content []byte) error {
	return d.would("set the %q block in %s to:\n%s", m.Begin, p, content)
}

func (d *DryRun) RemoveBlock(p string, m Marker, _ bool) error {
	data, err := d.ReadFile(p)
	if err != nil {
		return nil
	}
	if _, found, _ := FindBlock(data, m); !found {
		return nil
	}
	return d.would("remove the %q block from %s", m.Begin, p)
}

func (d *DryRun) Systemctl(_ context.Context, action UnitAction, unit string) error {
	if action == DaemonReload {
		return d.would("run systemctl daemon-reload")
	}
	return d.would("run systemctl %s %s", action, unit)
}

func (d *DryRun) WriteSysctl(key, value string) error {
	return d.would("set sysctl %s=%s", key, value)
}

func (d *DryRun) LoadModule(_ context.Context, name string) error {
	return d.would("load kernel module %s", name)
}

func (d *DryRun) UnloadModule(_ context.Context, name string) error {
	return d.would("unload kernel module %s", name)
}

func (d *DryRun) Unmount(p string) error { return d.would("unmount %s", p) }

func (d *DryRun) Run(_ context.Context, c Command) ([]byte, error) {
	return nil, d.would("run %s", c)
}

func (d *DryRun) Residue(_ context.Context, r Residue) error {
	return d.would("note for reset: %s", r)
}
