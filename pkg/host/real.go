package host

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
)

// Executor runs a program and returns what it wrote to stdout and stderr.
// err is an *exec.ExitError when the program ran and failed.
type Executor func(ctx context.Context, name string, args ...string) (stdout, stderr []byte, err error)

// ExecOS runs programs with os/exec.
func ExecOS(ctx context.Context, name string, args ...string) ([]byte, []byte, error) {
	var stdout, stderr bytes.Buffer
	c := exec.CommandContext(ctx, name, args...)
	c.Stdout, c.Stderr = &stdout, &stderr
	err := c.Run()
	return stdout.Bytes(), stderr.Bytes(), err
}

// Real changes the machine: files under Paths.Root, and programs
// (systemctl, modprobe, ...) through Exec on the running system.
type Real struct {
	P Paths
	// Exec runs programs; ExecOS when nil.
	Exec Executor
	// MountInfo is the mountinfo file Mounts reads; /proc/self/mountinfo
	// when empty.
	MountInfo string
}

var _ Host = (*Real)(nil)

// NewReal returns a Real host for paths that runs programs with os/exec.
func NewReal(paths Paths) *Real { return &Real{P: paths} }

func (r *Real) Paths() Paths { return r.P }

func (r *Real) abs(p string) (string, error) {
	if err := CheckPath(p); err != nil {
		return "", err
	}
	return r.P.Abs(p), nil
}

func (r *Real) ReadFile(p string) ([]byte, error) {
	a, err := r.abs(p)
	if err != nil {
		return nil, err
	}
	return os.ReadFile(a)
}

func (r *Real) Lstat(p string) (FileInfo, error) {
	a, err := r.abs(p)
	if err != nil {
		return FileInfo{}, err
	}
	st, err := os.Lstat(a)
	if err != nil {
		return FileInfo{}, err
	}
	fi := FileInfo{Mode: st.Mode().Perm(), Size: st.Size()}
	if sys, ok := st.Sys().(*syscall.Stat_t); ok {
		fi.UID, fi.GID = int(sys.Uid), int(sys.Gid)
	}
	switch {
	case st.Mode().IsRegular():
		fi.Kind = KindFile
	case st.IsDir():
		fi.Kind = KindDir
	case st.Mode()&fs.ModeSymlink != 0:
		fi.Kind = KindSymlink
		if fi.Target, err = os.Readlink(a); err != nil {
			return FileInfo{}, err
		}
	default:
		fi.Kind = KindOther
	}
	return fi, nil
}

func (r *Real) ReadDir(p string) ([]string, error) {
	a, err := r.abs(p)
	if err != nil {
		return nil, err
	}
	entries, err := os.ReadDir(a)
	if err != nil {
		return nil, err
	}
	names := make([]string, len(entries))
	for i, e := range entries {
		names[i] = e.Name()
	}
	return names, nil
}

func (r *Real) WriteFile(p string, data []byte, f File) error {
	a, err := r.abs(p)
	if err != nil {
		return err
	}
	if err := writeAtomic(a, bytes.NewReader(data), f); err != nil {
		return fmt.Errorf("write %s: %w", p, err)
	}
	return nil
}

func (r *Real) InstallFile(p, src string, f File) error {
	a, err := r.abs(p)
	if err != nil {
		return err
	}
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("install %s: %w", p, err)
	}
	defer in.Close()
	if err := writeAtomic(a, in, f); err != nil {
		return fmt.Errorf("install %s from %s: %w", p, src, err)
	}
	return nil
}

func (r *Real) MkdirAll(p string, mode fs.FileMode) error {
	a, err := r.abs(p)
	if err != nil {
		return err
	}
	// One level at a time, so each new directory gets mode exactly (MkdirAll
	// would apply the umask) and is synced into its parent.
	var missing []string
	for d := a; ; d = filepath.Dir(d) {
		if _, err := os.Lstat(d); err == nil {
			break
		} else if !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("mkdir %s: %w", p, err)
		}
		missing = append(missing, d)
		if d == filepath.Dir(d) {
			break
		}
	}
	for _, d := range slices.Backward(missing) {
		if err := os.Mkdir(d, mode.Perm()); err != nil && !errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("mkdir %s: %w", p, err)
		}
		if err := os.Chmod(d, mode.Perm()); err != nil {
			return fmt.Errorf("mkdir %s: %w", p, err)
		}
		if err := syncDir(filepath.Dir(d)); err != nil {
			return fmt.Errorf("mkdir %s: %w", p, err)
		}
	}
	return nil
}

func (r *Real) Remove(p string) error {
	a, err := r.abs(p)
	if err != nil {
		return err
	}
	if err := os.Remove(a); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove %s: %w", p, err)
	}
	return syncDir(filepath.Dir(a))
}

func (r *Real) RemoveAll(p string) error {
	a, err := r.abs(p)
	if err != nil {
		return err
	}
	if p == "/" {
		return errors.New("refusing to remove /")
	}
	mounts, err := r.Mounts()
	if err != nil {
		return fmt.Errorf("remove %s: %w", p, err)
	}
	for _, m := range mounts {
		if Within(m, p) {
			return fmt.Errorf("remove %s: %s is a mount point: unmount it first", p, m)
		}
	}
	if err := removeAllOneFS(a); err != nil {
		return fmt.Errorf("remove %s: %w", p, err)
	}
	return nil
}

// removeAllOneFS removes a tree and refuses to descend into a directory on
// another device, a mount point Mounts did not know about.
func removeAllOneFS(a string) error {
	st, err := os.Lstat(a)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if !st.IsDir() {
		return os.Remove(a)
	}
	dev := st.Sys().(*syscall.Stat_t).Dev
	var rm func(dir string) error
	rm = func(dir string) error {
		entries, err := os.ReadDir(dir)
		if err != nil {
			return err
		}
		for _, e := range entries {
			child := filepath.Join(dir, e.Name())
			if e.IsDir() {
				cst, err := os.Lstat(child)
				if err != nil {
					return err
				}
				if cst.Sys().(*syscall.Stat_t).Dev != dev {
					return fmt.Errorf("%s is on another file system: unmount it first", child)
				}
				if err := rm(child); err != nil {
					return err
				}
				continue
			}
			if err := os.Remove(child); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return err
			}
		}
		return os.Remove(dir)
	}
	return rm(a)
}

func (r *Real) Symlink(target, p string) error {
	a, err := r.abs(p)
	if err != nil {
		return err
	}
	if err := symlinkAtomic(target, a); err != nil {
		return fmt.Errorf("symlink %s -> %s: %w", p, target, err)
	}
	return nil
}

func (r *Real) SetMode(p string, f File) error {
	a, err := r.abs(p)
	if err != nil {
		return err
	}
	if err := os.Chmod(a, f.Mode.Perm()); err != nil {
		return fmt.Errorf("chmod %s: %w", p, err)
	}
	if err := os.Lchown(a, f.UID, f.GID); err != nil {
		return fmt.Errorf("chown %s: %w", p, err)
	}
	return nil
}

// readText reads a text file edgeadm edits in place and the mode and owner
// to keep. A missing file reads as empty with mode 0644.
func (r *Real) readText(p string) ([]byte, File, error) {
	fi, err := r.Lstat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, Public, nil
	}
	if err != nil {
		return nil, File{}, err
	}
	if fi.Kind != KindFile {
		return nil, File{}, fmt.Errorf("%s is a %s, not a regular file: edgeadm edits only regular files", p, fi.Kind)
	}
	data, err := r.ReadFile(p)
	return data, File{Mode: fi.Mode, UID: fi.UID, GID: fi.GID}, err
}

func (r *Real) SetBlock(p string, m Marker, content []byte) error {
	data, f, err := r.readText(p)
	if err != nil {
		return fmt.Errorf("set the edgeadm block in %s: %w", p, err)
	}
	out, _, err := SetBlockBytes(data, m, content)
	if err != nil {
		return fmt.Errorf("set the edgeadm block in %s: %w (fix the file by hand)", p, err)
	}
	if bytes.Equal(out, data) {
		return nil
	}
	return r.WriteFile(p, out, f)
}

func (r *Real) RemoveBlock(p string, m Marker, addedNewline bool) error {
	data, f, err := r.readText(p)
	if err != nil {
		return fmt.Errorf("remove the edgeadm block from %s: %w", p, err)
	}
	out, found, err := RemoveBlockBytes(data, m, addedNewline)
	if err != nil {
		return fmt.Errorf("remove the edgeadm block from %s: %w (fix the file by hand)", p, err)
	}
	if !found {
		return nil
	}
	return r.WriteFile(p, out, f)
}

func (r *Real) exec() Executor {
	if r.Exec != nil {
		return r.Exec
	}
	return ExecOS
}

func (r *Real) Systemctl(ctx context.Context, action UnitAction, unit string) error {
	args := []string{string(action)}
	if action != DaemonReload {
		args = append(args, unit)
	}
	_, err := r.Run(ctx, Cmd("systemctl", args...))
	return err
}

func (r *Real) UnitState(ctx context.Context, unit string) (UnitState, error) {
	var s UnitState
	for _, q := range []struct {
		verb string
		dst  *string
		none string
	}{{"is-enabled", &s.Enabled, "not-found"}, {"is-active", &s.Active, "inactive"}} {
		// Both verbs exit non-zero for "no" and print the answer on stdout.
		out, stderr, err := r.exec()(ctx, "systemctl", q.verb, unit)
		var exitErr *exec.ExitError
		if err != nil && !errors.As(err, &exitErr) {
			return UnitState{}, commandError(Cmd("systemctl", q.verb, unit), err, stderr)
		}
		*q.dst = strings.TrimSpace(string(out))
		if *q.dst == "" {
			*q.dst = q.none
		}
	}
	return s, nil
}

var sysctlKey = regexp.MustCompile(`^[a-z0-9_][a-z0-9_.-]*$`)

func sysctlPath(key string) (string, error) {
	if !sysctlKey.MatchString(key) || strings.Contains(key, "..") {
		return "", fmt.Errorf("invalid sysctl name %q", key)
	}
	return "/proc/sys/" + strings.ReplaceAll(key, ".", "/"), nil
}

func (r *Real) ReadSysctl(key string) (string, error) {
	p, err := sysctlPath(key)
	if err != nil {
		return "", err
	}
	b, err := r.ReadFile(p)
	if err != nil {
		return "", fmt.Errorf("read sysctl %s: %w", key, err)
	}
	return strings.TrimSpace(string(b)), nil
}

func (r *Real) WriteSysctl(key, value string) error {
	p, err := sysctlPath(key)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(r.P.Abs(p), os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		return fmt.Errorf("set sysctl %s=%s: %w", key, value, err)
	}
	if _, err := f.WriteString(value + "\n"); err != nil {
		_ = f.Close()
		return fmt.Errorf("set sysctl %s=%s: %w", key, value, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("set sysctl %s=%s: %w", key, value, err)
	}
	return nil
}

var moduleName = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

func (r *Real) ModuleLoaded(name string) (bool, error) {
	if !moduleName.MatchString(name) {
		return false, fmt.Errorf("invalid kernel module name %q", name)
	}
	_, err := os.Stat(r.P.Abs("/sys/module/" + name))
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	return err == nil, err
}

func (r *Real) LoadModule(ctx context.Context, name string) error {
	if !moduleName.MatchString(name) {
		return fmt.Errorf("invalid kernel module name %q", name)
	}
	_, err := r.Run(ctx, Cmd("modprobe", name))
	return err
}

func (r *Real) UnloadModule(ctx context.Context, name string) error {
	if !moduleName.MatchString(name) {
		return fmt.Errorf("invalid kernel module name %q", name)
	}
	_, err := r.Run(ctx, Cmd("modprobe", "-r", name))
	return err
}

func (r *Real) Mounts() ([]string, error) {
	src := r.MountInfo
	if src == "" {
		src = "/proc/self/mountinfo"
	}
	data, err := os.ReadFile(src)
	if err != nil {
		return nil, fmt.Errorf("list mounts: %w", err)
	}
	var out []string
	for _, m := range ParseMountInfo(data) {
		if hp, ok := r.P.Rel(m); ok {
			out = append(out, hp)
		}
	}
	return out, nil
}

func (r *Real) Unmount(p string) error {
	a, err := r.abs(p)
	if err != nil {
		return err
	}
	err = syscall.Unmount(a, 0)
	if errors.Is(err, syscall.EBUSY) {
		// Still in use (a process holds a file open): detach it from the
		// tree now; the kernel frees it when the last user goes.
		err = syscall.Unmount(a, syscall.MNT_DETACH)
	}
	if err != nil && !errors.Is(err, syscall.EINVAL) && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("unmount %s: %w", p, err)
	}
	return nil
}

func (r *Real) Run(ctx context.Context, c Command) ([]byte, error) {
	stdout, stderr, err := r.exec()(ctx, c.Name, c.Args...)
	out := append(stdout, stderr...)
	if err != nil {
		return out, commandError(c, err, out)
	}
	return out, nil
}

func (r *Real) Output(ctx context.Context, c Command) ([]byte, error) {
	stdout, stderr, err := r.exec()(ctx, c.Name, c.Args...)
	if err != nil {
		return stdout, commandError(c, err, stderr)
	}
	return stdout, nil
}

func (r *Real) Residue(context.Context, Residue) error { return nil }

// commandError says which command failed, how, and what it printed.
func commandError(c Command, err error, output []byte) error {
	out := strings.TrimSpace(string(output))
	if len(out) > 2000 {
		out = "..." + out[len(out)-2000:]
	}
	if out == "" {
		return fmt.Errorf("%s: %w", c, err)
	}
	return fmt.Errorf("%s: %w: %s", c, err, out)
}

// ParseMountInfo returns the mount points listed in a mountinfo file
// (proc(5)), with the octal escapes of spaces and the like undone.
func ParseMountInfo(data []byte) []string {
	var out []string
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 {
			continue
		}
		out = append(out, unescapeMountPath(f[4]))
	}
	return out
}

func unescapeMountPath(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) && isOctal(s[i+1:i+4]) {
			v := (s[i+1]-'0')*64 + (s[i+2]-'0')*8 + (s[i+3] - '0')
			b.WriteByte(v)
			i += 3
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isOctal(s string) bool {
	if len(s) != 3 {
		return false
	}
	for _, c := range []byte(s) {
		if c < '0' || c > '7' {
			return false
		}
	}
	return true
}
