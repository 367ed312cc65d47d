package host

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path"
	"slices"
	"strings"
	"sync"
)

// ErrKilled is what every mutation of a Fake returns once KillAfter's count
// is used up: the simulated process has died and changes nothing more.
var ErrKilled = errors.New("fake host: process killed")

// Fake is an in-memory host for unit tests: files, directories and symlinks,
// systemd units, sysctls, kernel modules and mounts, with hooks to fail or
// "kill" at any mutation. It enforces what the real host would: a file's
// parent directory must exist, a unit must have a unit file to be enabled.
type Fake struct {
	P Paths

	mu        sync.Mutex
	st        FakeState
	log       []string
	mutations int
	killAt    int // mutations allowed before ErrKilled; -1: no limit
	pending   [][2]string

	// Fail, when set, is asked before each mutation (op is the Host method
	// name, arg its path, unit, key or command) and may fail it.
	Fail func(op, arg string) error
	// Respond, when set, answers Output and Run; the default prints nothing.
	Respond func(c Command) ([]byte, error)
	// After, when set, is told about each mutation once it is made (op and
	// arg as for Fail), outside the lock: a test plays the part of a daemon
	// there (the kubelet writing its kubeconfig once started).
	After func(op, arg string)
}

// FakeState is everything a Fake holds; two states compare with Equal.
type FakeState struct {
	Files   map[string]FakeFile
	Units   map[string]UnitState
	Sysctls map[string]string
	Modules map[string]bool // loaded
	Mounts  []string
}

// FakeFile is a file, directory or symlink of a Fake.
type FakeFile struct {
	Kind   FileKind
	Data   []byte
	Mode   fs.FileMode
	UID    int
	GID    int
	Target string
}

var _ Host = (*Fake)(nil)

// NewFake returns a fake host with an ordinary directory tree, an /etc/hosts,
// and the sysctls and modules join looks at.
func NewFake() *Fake {
	f := &Fake{P: DefaultPaths("/"), killAt: -1, st: FakeState{
		Files:   map[string]FakeFile{},
		Units:   map[string]UnitState{},
		Sysctls: map[string]string{"net.ipv4.ip_forward": "0", "net.bridge.bridge-nf-call-iptables": "0", "net.bridge.bridge-nf-call-ip6tables": "0"},
		Modules: map[string]bool{"overlay": true},
	}}
	for _, d := range []string{"/", "/etc", "/etc/systemd", "/etc/systemd/system", "/etc/sysctl.d", "/etc/modules-load.d",
		"/usr", "/usr/libexec", "/usr/local", "/usr/local/bin", "/opt", "/var", "/var/lib", "/var/log", "/run", "/tmp"} {
		f.st.Files[d] = FakeFile{Kind: KindDir, Mode: 0o755}
	}
	f.st.Files["/etc/hosts"] = FakeFile{Kind: KindFile, Mode: 0o644, Data: []byte("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost\n")}
	return f
}

// KillAfter lets n more mutations happen; every later one returns ErrKilled.
// A negative n removes the limit ("restarts the process").
func (f *Fake) KillAfter(n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if n < 0 {
		f.killAt = -1
		return
	}
	f.killAt = f.mutations + n
}

// Mutations counts the mutations made so far.
func (f *Fake) Mutations() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.mutations
}

// Log lists every mutation made, in order.
func (f *Fake) Log() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.log)
}

// State returns a deep copy of the host's state.
func (f *Fake) State() FakeState {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.st.clone()
}

// SetState replaces the host's state (a copy of s).
func (f *Fake) SetState(s FakeState) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.st = s.clone()
}

func (s FakeState) clone() FakeState {
	c := FakeState{
		Files:   make(map[string]FakeFile, len(s.Files)),
		Units:   maps.Clone(s.Units),
		Sysctls: maps.Clone(s.Sysctls),
		Modules: maps.Clone(s.Modules),
		Mounts:  slices.Clone(s.Mounts),
	}
	for k, v := range s.Files {
		v.Data = bytes.Clone(v.Data)
		c.Files[k] = v
	}
	return c
}

// Diff describes how s and o differ, one line per difference; empty when equal.
func (s FakeState) Diff(o FakeState) []string {
	var d []string
	for _, k := range sortedKeys(s.Files, o.Files) {
		a, inA := s.Files[k]
		b, inB := o.Files[k]
		switch {
		case !inB:
			d = append(d, fmt.Sprintf("- %s (%s)", k, a.Kind))
		case !inA:
			d = append(d, fmt.Sprintf("+ %s (%s)", k, b.Kind))
		case a.Kind != b.Kind || a.Mode != b.Mode || a.UID != b.UID || a.GID != b.GID || a.Target != b.Target:
			d = append(d, fmt.Sprintf("~ %s: %+v != %+v", k, meta(a), meta(b)))
		case !bytes.Equal(a.Data, b.Data):
			d = append(d, fmt.Sprintf("~ %s: content %q != %q", k, a.Data, b.Data))
		}
	}
	for _, k := range sortedKeys(s.Units, o.Units) {
		if s.Units[k] != o.Units[k] {
			d = append(d, fmt.Sprintf("~ unit %s: %+v != %+v", k, s.Units[k], o.Units[k]))
		}
	}
	for _, k := range sortedKeys(s.Sysctls, o.Sysctls) {
		if s.Sysctls[k] != o.Sysctls[k] {
			d = append(d, fmt.Sprintf("~ sysctl %s: %q != %q", k, s.Sysctls[k], o.Sysctls[k]))
		}
	}
	for _, k := range sortedKeys(s.Modules, o.Modules) {
		if s.Modules[k] != o.Modules[k] {
			d = append(d, fmt.Sprintf("~ module %s: %v != %v", k, s.Modules[k], o.Modules[k]))
		}
	}
	if !slices.Equal(s.Mounts, o.Mounts) {
		d = append(d, fmt.Sprintf("~ mounts %v != %v", s.Mounts, o.Mounts))
	}
	return d
}

func meta(f FakeFile) string {
	return fmt.Sprintf("%s %04o %d:%d %s", f.Kind, f.Mode, f.UID, f.GID, f.Target)
}

func sortedKeys[V any](a, b map[string]V) []string {
	keys := slices.Collect(maps.Keys(a))
	for k := range b {
		if _, ok := a[k]; !ok {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	return keys
}

// PutFile sets a file directly (test setup; not a mutation), creating parents.
func (f *Fake) PutFile(p string, data []byte, mode fs.FileMode) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.mkdirs(path.Dir(p), 0o755)
	f.st.Files[p] = FakeFile{Kind: KindFile, Data: bytes.Clone(data), Mode: mode}
}

// PutDir makes a directory and its parents directly (test setup).
func (f *Fake) PutDir(p string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.mkdirs(p, 0o755)
}

// PutUnit sets a unit's state directly (test setup).
func (f *Fake) PutUnit(unit string, s UnitState) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.st.Units[unit] = s
}

// PutMount adds a mount point (test setup), as a runtime would.
func (f *Fake) PutMount(p string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.st.Mounts = append(f.st.Mounts, p)
}

// File returns a file's content and whether it is there.
func (f *Fake) File(p string) ([]byte, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n, ok := f.st.Files[p]
	return bytes.Clone(n.Data), ok && n.Kind == KindFile
}

func (f *Fake) mkdirs(p string, mode fs.FileMode) {
	for d := p; ; d = path.Dir(d) {
		if _, ok := f.st.Files[d]; ok || d == "/" {
			break
		}
		f.mkdirs(path.Dir(d), mode)
		f.st.Files[d] = FakeFile{Kind: KindDir, Mode: mode}
	}
}

// mutate runs the bookkeeping every mutation shares: kill and Fail hooks,
// the log. It is called with f.mu held.
func (f *Fake) mutate(op, arg string) error {
	if f.killAt >= 0 && f.mutations >= f.killAt {
		return fmt.Errorf("%s %s: %w", op, arg, ErrKilled)
	}
	if f.Fail != nil {
		if err := f.Fail(op, arg); err != nil {
			return err
		}
	}
	f.mutations++
	f.log = append(f.log, op+" "+arg)
	if f.After != nil {
		f.pending = append(f.pending, [2]string{op, arg})
	}
	return nil
}

// flush tells After about the mutations made; called without the lock.
func (f *Fake) flush() {
	f.mu.Lock()
	p := f.pending
	f.pending = nil
	f.mu.Unlock()
	for _, m := range p {
		f.After(m[0], m[1])
	}
}

func (f *Fake) Paths() Paths { return f.P }

func notExist(op, p string) error { return &fs.PathError{Op: op, Path: p, Err: fs.ErrNotExist} }

func (f *Fake) ReadFile(p string) ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if strings.HasPrefix(p, "/proc/sys/") {
		v, ok := f.st.Sysctls[strings.ReplaceAll(strings.TrimPrefix(p, "/proc/sys/"), "/", ".")]
		if !ok {
			return nil, notExist("open", p)
		}
		return []byte(v + "\n"), nil
	}
	n, ok := f.st.Files[p]
	if !ok {
		return nil, notExist("open", p)
	}
	if n.Kind != KindFile {
		return nil, fmt.Errorf("read %s: is a %s", p, n.Kind)
	}
	return bytes.Clone(n.Data), nil
}

func (f *Fake) Lstat(p string) (FileInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n, ok := f.st.Files[p]
	if !ok {
		return FileInfo{}, notExist("lstat", p)
	}
	return FileInfo{Kind: n.Kind, Mode: n.Mode, UID: n.UID, GID: n.GID, Size: int64(len(n.Data)), Target: n.Target}, nil
}

func (f *Fake) ReadDir(p string) ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n, ok := f.st.Files[p]
	if !ok {
		return nil, notExist("open", p)
	}
	if n.Kind != KindDir {
		return nil, fmt.Errorf("readdir %s: not a directory", p)
	}
	var names []string
	for k := range f.st.Files {
		if k != "/" && path.Dir(k) == p {
			names = append(names, path.Base(k))
		}
	}
	slices.Sort(names)
	return names, nil
}

func (f *Fake) parentDir(p string) error {
	if n, ok := f.st.Files[path.Dir(p)]; !ok || n.Kind != KindDir {
		return fmt.Errorf("%s: parent directory does not exist", p)
	}
	return nil
}

func (f *Fake) WriteFile(p string, data []byte, m File) error {
	if err := CheckPath(p); err != nil {
		return err
	}
	if m.SHA256 != "" {
		if sum := sha256.Sum256(data); hex.EncodeToString(sum[:]) != m.SHA256 {
			return fmt.Errorf("write %s: %w", p, ErrChecksum)
		}
	}
	defer f.flush()
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.parentDir(p); err != nil {
		return fmt.Errorf("write %s: %w", p, err)
	}
	if n, ok := f.st.Files[p]; ok && n.Kind == KindDir {
		return fmt.Errorf("write %s: is a directory", p)
	}
	if err := f.mutate("WriteFile", p); err != nil {
		return err
	}
	f.st.Files[p] = FakeFile{Kind: KindFile, Data: bytes.Clone(data), Mode: m.Mode.Perm(), UID: m.UID, GID: m.GID}
	return nil
}

func (f *Fake) InstallFile(p, src string, m File) error {
	data, err := os.ReadFile(src)
	if err != nil {
		return fmt.Errorf("install %s: %w", p, err)
	}
	return f.WriteFile(p, data, m)
}

func (f *Fake) MkdirAll(p string, mode fs.FileMode) error {
	if err := CheckPath(p); err != nil {
		return err
	}
	defer f.flush()
	f.mu.Lock()
	defer f.mu.Unlock()
	if n, ok := f.st.Files[p]; ok {
		if n.Kind != KindDir {
			return fmt.Errorf("mkdir %s: not a directory", p)
		}
		return nil
	}
	if err := f.mutate("MkdirAll", p); err != nil {
		return err
	}
	f.mkdirs(p, mode.Perm())
	return nil
}

func (f *Fake) Remove(p string) error {
	defer f.flush()
	f.mu.Lock()
	defer f.mu.Unlock()
	n, ok := f.st.Files[p]
	if !ok {
		return nil
	}
	if n.Kind == KindDir {
		for k := range f.st.Files {
			if k != p && Within(k, p) {
				return fmt.Errorf("remove %s: directory not empty", p)
			}
		}
	}
	if err := f.mutate("Remove", p); err != nil {
		return err
	}
	delete(f.st.Files, p)
	return nil
}

func (f *Fake) RemoveAll(p string) error {
	defer f.flush()
	f.mu.Lock()
	defer f.mu.Unlock()
	if p == "/" {
		return errors.New("refusing to remove /")
	}
	for _, m := range f.st.Mounts {
		if Within(m, p) {
			return fmt.Errorf("remove %s: %s is a mount point: unmount it first", p, m)
		}
	}
	if _, ok := f.st.Files[p]; !ok {
		return nil
	}
	if err := f.mutate("RemoveAll", p); err != nil {
		return err
	}
	for k := range f.st.Files {
		if Within(k, p) {
			delete(f.st.Files, k)
		}
	}
	return nil
}

func (f *Fake) Symlink(target, p string) error {
	defer f.flush()
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.parentDir(p); err != nil {
		return fmt.Errorf("symlink %s: %w", p, err)
	}
	if err := f.mutate("Symlink", p); err != nil {
		return err
	}
	f.st.Files[p] = FakeFile{Kind: KindSymlink, Target: target, Mode: 0o777}
	return nil
}

func (f *Fake) SetMode(p string, m File) error {
	defer f.flush()
	f.mu.Lock()
	defer f.mu.Unlock()
	n, ok := f.st.Files[p]
	if !ok {
		return notExist("chmod", p)
	}
	if err := f.mutate("SetMode", p); err != nil {
		return err
	}
	if n.Kind != KindSymlink {
		n.Mode = m.Mode.Perm()
	}
	n.UID, n.GID = m.UID, m.GID
	f.st.Files[p] = n
	return nil
}

func (f *Fake) editText(p string, edit func([]byte) ([]byte, bool, error)) error {
	defer f.flush()
	f.mu.Lock()
	defer f.mu.Unlock()
	n, ok := f.st.Files[p]
	if ok && n.Kind != KindFile {
		return fmt.Errorf("%s is a %s, not a regular file", p, n.Kind)
	}
	if !ok {
		n = FakeFile{Kind: KindFile, Mode: 0o644}
	}
	out, changed, err := edit(n.Data)
	if err != nil || !changed {
		return err
	}
	if err := f.parentDir(p); err != nil {
		return err
	}
	if err := f.mutate("WriteFile", p); err != nil {
		return err
	}
	n.Data = out
	f.st.Files[p] = n
	return nil
}

func (f *Fake) SetBlock(p string, m Marker, content []byte) error {
	return f.editText(p, func(data []byte) ([]byte, bool, error) {
		out, _, err := SetBlockBytes(data, m, content)
		return out, err == nil && !bytes.Equal(out, data), err
	})
}

func (f *Fake) RemoveBlock(p string, m Marker, addedNewline bool) error {
	if _, err := f.Lstat(p); err != nil {
		return nil
	}
	return f.editText(p, func(data []byte) ([]byte, bool, error) {
		return RemoveBlockBytes(data, m, addedNewline)
	})
}

func (f *Fake) unitState(unit string) UnitState {
	if s, ok := f.st.Units[unit]; ok {
		return s
	}
	if _, ok := f.st.Files[path.Join(f.P.UnitDir, unit)]; ok {
		return UnitState{Enabled: "disabled", Active: "inactive"}
	}
	return UnitState{Enabled: "not-found", Active: "inactive"}
}

func (f *Fake) Systemctl(_ context.Context, action UnitAction, unit string) error {
	defer f.flush()
	f.mu.Lock()
	defer f.mu.Unlock()
	if action != DaemonReload {
		_, hasFile := f.st.Files[path.Join(f.P.UnitDir, unit)]
		_, registered := f.st.Units[unit]
		if !hasFile && !registered {
			return fmt.Errorf("systemctl %s %s: Unit %s not found", action, unit, unit)
		}
	}
	if err := f.mutate("Systemctl", strings.TrimSpace(string(action)+" "+unit)); err != nil {
		return err
	}
	if action == DaemonReload {
		return nil
	}
	s := f.unitState(unit)
	switch action {
	case Enable:
		s.Enabled = "enabled"
	case Disable:
		s.Enabled = "disabled"
	case Start, Restart:
		s.Active = "active"
	case Stop:
		s.Active = "inactive"
	default:
		return fmt.Errorf("systemctl: unknown action %q", action)
	}
	f.st.Units[unit] = s
	if s == (UnitState{Enabled: "disabled", Active: "inactive"}) {
		// The state a unit file alone implies: keep no entry, so that a
		// unit whose file goes away reads as not-found again.
		delete(f.st.Units, unit)
	}
	return nil
}

func (f *Fake) UnitState(_ context.Context, unit string) (UnitState, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.unitState(unit), nil
}

func (f *Fake) ReadSysctl(key string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	v, ok := f.st.Sysctls[key]
	if !ok {
		return "", fmt.Errorf("read sysctl %s: %w", key, fs.ErrNotExist)
	}
	return v, nil
}

func (f *Fake) WriteSysctl(key, value string) error {
	defer f.flush()
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.st.Sysctls[key]; !ok {
		return fmt.Errorf("set sysctl %s: %w", key, fs.ErrNotExist)
	}
	if err := f.mutate("WriteSysctl", key); err != nil {
		return err
	}
	f.st.Sysctls[key] = value
	return nil
}

func (f *Fake) ModuleLoaded(name string) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.st.Modules[name], nil
}

func (f *Fake) LoadModule(_ context.Context, name string) error {
	defer f.flush()
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.mutate("LoadModule", name); err != nil {
		return err
	}
	f.st.Modules[name] = true
	return nil
}

func (f *Fake) UnloadModule(_ context.Context, name string) error {
	defer f.flush()
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.mutate("UnloadModule", name); err != nil {
		return err
	}
	f.st.Modules[name] = false
	return nil
}

func (f *Fake) Mounts() ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.st.Mounts), nil
}

func (f *Fake) Unmount(p string) error {
	defer f.flush()
	f.mu.Lock()
	defer f.mu.Unlock()
	i := slices.Index(f.st.Mounts, p)
	if i < 0 {
		return nil
	}
	if err := f.mutate("Unmount", p); err != nil {
		return err
	}
	f.st.Mounts = slices.Delete(f.st.Mounts, i, i+1)
	return nil
}

func (f *Fake) respond(c Command) ([]byte, error) {
	if f.Respond == nil {
		return nil, nil
	}
	return f.Respond(c)
}

func (f *Fake) Run(_ context.Context, c Command) ([]byte, error) {
	defer f.flush()
	f.mu.Lock()
	if err := f.mutate("Run", c.String()); err != nil {
		f.mu.Unlock()
		return nil, err
	}
	f.mu.Unlock()
	return f.respond(c)
}

func (f *Fake) Output(_ context.Context, c Command) ([]byte, error) { return f.respond(c) }

func (f *Fake) Residue(_ context.Context, r Residue) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.log = append(f.log, "Residue "+r.String())
	return nil
}
