// Package host is the one seam through which edgeadm changes the machine it
// runs on. Every mutation (a file written or removed, a directory, a symlink,
// a systemd unit started or enabled, a marked block in /etc/hosts, a sysctl, a
// kernel module, a command that changes state) is a method of Host, and
// nothing in edgeadm changes the host any other way.
//
// Three implementations share the interface:
//
//   - Real changes the machine (files under Paths.Root, commands on the
//     running system).
//   - DryRun reads the machine but changes nothing: every mutation is printed
//     as a "would ..." line and recorded.
//   - Fake keeps an in-memory machine for unit tests.
//
// The journal (package journal) is a fourth Host that wraps another: it
// records each step, with what is needed to undo it, before passing it on.
//
// Paths given to Host methods are host paths as the running system sees them
// ("/etc/hosts"); an implementation resolves them under Paths.Root, so tests
// and dry runs can point the whole tool at a temporary directory.
package host

import (
	"context"
	"io/fs"
	"strings"
)

// Host reads the machine and makes every change edgeadm makes to it.
type Host interface {
	Reader

	// WriteFile replaces path with data atomically (temporary file, fsync,
	// rename, fsync of the directory), with f's mode and owner. The parent
	// directory must exist.
	WriteFile(path string, data []byte, f File) error
	// InstallFile copies src, a path on the machine that is not resolved
	// under Root (for example a file of an extracted install package), to
	// path atomically, with f's mode and owner. When f.SHA256 is set the
	// copied bytes must have that sum or path is left untouched.
	InstallFile(path, src string, f File) error
	// MkdirAll creates path and any missing parents with mode.
	MkdirAll(path string, mode fs.FileMode) error
	// Remove removes a file, a symlink or an empty directory. A path that
	// does not exist is not an error.
	Remove(path string) error
	// RemoveAll removes path and everything below it without crossing into
	// another file system (a mount point below path is an error, so unmount
	// first). A path that does not exist is not an error.
	RemoveAll(path string) error
	// Symlink makes path a symbolic link to target, replacing what was there.
	Symlink(target, path string) error
	// SetMode gives path (not following a final symlink for the owner) f's
	// permission bits and owner.
	SetMode(path string, f File) error
	// SetBlock sets the block between m's marker lines in the text file path
	// to content, appending the block when the file has none, and keeps every
	// other byte of the file as it was. The file is rewritten atomically with
	// its mode and owner; a missing file is created with mode 0644.
	SetBlock(path string, m Marker, content []byte) error
	// RemoveBlock removes m's block from path, keeping every other byte.
	// addedNewline removes the newline SetBlock added before the block when
	// the file did not end with one (see SetBlockBytes); the journal knows.
	// A missing file or block is not an error.
	RemoveBlock(path string, m Marker, addedNewline bool) error
	// Systemctl runs "systemctl <action> [unit]".
	Systemctl(ctx context.Context, action UnitAction, unit string) error
	// WriteSysctl sets the kernel parameter key ("net.ipv4.ip_forward") now.
	// Making it persistent is a file in /etc/sysctl.d, written with WriteFile.
	WriteSysctl(key, value string) error
	// LoadModule loads a kernel module now ("modprobe <name>"). Making it
	// persistent is a file in /etc/modules-load.d, written with WriteFile.
	LoadModule(ctx context.Context, name string) error
	// UnloadModule unloads a kernel module ("modprobe -r <name>").
	UnloadModule(ctx context.Context, name string) error
	// Unmount unmounts the file system mounted at path.
	Unmount(path string) error
	// Run runs a command that changes the host. Its output is returned, and
	// is part of the error when the command fails.
	Run(ctx context.Context, c Command) ([]byte, error)
	// Residue announces that from now on something other than edgeadm (the
	// container runtime, the kubelet, a CNI plugin) will create r on the
	// host. Only the journal acts on it: it notes what exists now, so that
	// a reset removes what appeared later and nothing else.
	Residue(ctx context.Context, r Residue) error
}

// Reader is the read-only half of Host. Every implementation reads the same
// way it writes: Real and DryRun read the machine, Fake its own state.
type Reader interface {
	// Paths says where the host's files are.
	Paths() Paths
	ReadFile(path string) ([]byte, error)
	// Lstat describes path without following a final symlink. A missing path
	// gives an error that matches fs.ErrNotExist.
	Lstat(path string) (FileInfo, error)
	// ReadDir lists the names in a directory, sorted.
	ReadDir(path string) ([]string, error)
	// UnitState reports whether a systemd unit is enabled and active.
	UnitState(ctx context.Context, unit string) (UnitState, error)
	ReadSysctl(key string) (string, error)
	ModuleLoaded(name string) (bool, error)
	// Mounts lists the mount points on the host (host paths), in the order
	// the kernel lists them.
	Mounts() ([]string, error)
	// Output runs a command that only reads (iptables-save, ip link show)
	// and returns its standard output. It runs in a dry run too.
	Output(ctx context.Context, c Command) ([]byte, error)
}

// File is the mode and owner a written file gets.
type File struct {
	Mode fs.FileMode
	UID  int
	GID  int
	// SHA256 (lower-case hex), when set, is checked against the bytes
	// before they replace anything.
	SHA256 string
}

// Private is a root-owned file readable by root only: credentials, the journal.
var Private = File{Mode: 0o600}

// Public is a root-owned file readable by everyone.
var Public = File{Mode: 0o644}

// Executable is a root-owned program.
var Executable = File{Mode: 0o755}

// FileKind is what is at a path.
type FileKind string

const (
	KindFile    FileKind = "file"
	KindDir     FileKind = "dir"
	KindSymlink FileKind = "symlink"
	KindOther   FileKind = "other"
)

// FileInfo describes what is at a path.
type FileInfo struct {
	Kind FileKind
	Mode fs.FileMode // permission bits only
	UID  int
	GID  int
	Size int64
	// Target is a symlink's target.
	Target string
}

// UnitAction is what Systemctl does.
type UnitAction string

const (
	DaemonReload UnitAction = "daemon-reload"
	Enable       UnitAction = "enable"
	Disable      UnitAction = "disable"
	Start        UnitAction = "start"
	Stop         UnitAction = "stop"
	Restart      UnitAction = "restart"
)

// UnitState is what systemctl is-enabled and is-active say about a unit.
type UnitState struct {
	// Enabled is the output of "systemctl is-enabled": enabled, disabled,
	// static, masked, not-found, ...
	Enabled string
	// Active is the output of "systemctl is-active": active, inactive,
	// failed, activating, ...
	Active string
}

// IsEnabled says whether the unit starts at boot.
func (s UnitState) IsEnabled() bool {
	return s.Enabled == "enabled" || s.Enabled == "enabled-runtime" || s.Enabled == "alias"
}

// IsActive says whether the unit runs (or is on its way up).
func (s UnitState) IsActive() bool {
	return s.Active == "active" || s.Active == "activating" || s.Active == "reloading"
}

// Command is a program to run.
type Command struct {
	Name string
	Args []string
	// Undo, for a command run through Run, is the command that reverses it.
	// The journal records it and a rollback runs it; nil means the command
	// needs no undoing (its effects are removed some other way).
	Undo *Command `json:",omitempty"`
}

// Cmd builds a Command.
func Cmd(name string, args ...string) Command { return Command{Name: name, Args: args} }

// String is the command line as a person would type it.
func (c Command) String() string {
	if len(c.Args) == 0 {
		return c.Name
	}
	return c.Name + " " + strings.Join(c.Args, " ")
}

// ResidueKind is what kind of thing others create on the host.
type ResidueKind string

const (
	// ResidueDir: files and directories that appear in Path (created by the
	// runtime or kubelet, such as /var/lib/kubelet). If Path did not exist
	// it is removed entirely; otherwise only the names that were not in it.
	// Mounts below Path are unmounted first.
	ResidueDir ResidueKind = "dir"
	// ResidueIptables: iptables chains named KUBE-*, CNI-* and FLANNEL-* that
	// did not exist, with the rules that jump to them.
	ResidueIptables ResidueKind = "iptables"
	// ResidueLinks: network links made by CNI plugins (cni0, flannel.1, ...)
	// that did not exist.
	ResidueLinks ResidueKind = "links"
	// ResiduePods: pod sandboxes and containers of the kubelet in
	// containerd's k8s.io namespace, removed with crictl while containerd
	// (and the pod network's configuration) is still there, after StopUnit
	// (the kubelet, which would make them again) is stopped.
	ResiduePods ResidueKind = "pods"
)

// Residue is something others will create on the host.
type Residue struct {
	Kind ResidueKind
	// Path is the directory (ResidueDir) or the crictl binary (ResiduePods).
	Path string `json:",omitempty"`
	// Endpoint is the CRI socket (ResiduePods).
	Endpoint string `json:",omitempty"`
	// StopUnit is stopped first (ResiduePods).
	StopUnit string `json:",omitempty"`
}

func (r Residue) String() string {
	switch r.Kind {
	case ResidueDir:
		return "new entries in " + r.Path
	case ResidueIptables:
		return "new iptables chains KUBE-*, CNI-*, FLANNEL-*"
	case ResidueLinks:
		return "new network links made by CNI plugins"
	case ResiduePods:
		return "pods and containers in containerd (k8s.io)"
	}
	return string(r.Kind)
}
