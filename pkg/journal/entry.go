package journal

import (
	"fmt"
	"io/fs"
	"time"

	"github.com/edgeadm/edgeadm/pkg/host"
)

// Op is the kind of host mutation an entry records.
type Op string

const (
	OpWrite       Op = "write"        // WriteFile or InstallFile
	OpMkdir       Op = "mkdir"        // MkdirAll
	OpRemove      Op = "remove"       // Remove, or RemoveAll of a file
	OpSymlink     Op = "symlink"      // Symlink
	OpSetMode     Op = "set-mode"     // SetMode
	OpSetBlock    Op = "set-block"    // SetBlock
	OpRemoveBlock Op = "remove-block" // RemoveBlock
	OpSystemctl   Op = "systemctl"    // Systemctl
	OpSysctl      Op = "sysctl"       // WriteSysctl
	OpLoadModule  Op = "load-module"  // LoadModule
	OpUnloadMod   Op = "unload-module"
	OpUnmount     Op = "unmount"
	OpRun         Op = "run"     // Run
	OpResidue     Op = "residue" // Residue
)

// Entry is one recorded step: what was about to change and what undoing it
// needs. It is written, and synced, before the change is made; a SIGKILL
// between the two leaves an entry whose undo finds nothing to undo, which is
// why every undo is idempotent.
type Entry struct {
	Seq   int       `json:"seq"`
	Run   int       `json:"run"`
	Phase string    `json:"phase,omitempty"`
	Time  time.Time `json:"time"`
	Op    Op        `json:"op"`
	Path  string    `json:"path,omitempty"`

	// Prior is what was at Path before (write, remove, symlink).
	Prior *Prior `json:"prior,omitempty"`
	// Created lists the directories MkdirAll made, outermost first.
	Created []string `json:"created,omitempty"`

	Unit      string          `json:"unit,omitempty"`
	Action    host.UnitAction `json:"action,omitempty"`
	PriorUnit *host.UnitState `json:"priorUnit,omitempty"`

	Key        string `json:"key,omitempty"`
	Value      string `json:"value,omitempty"`
	PriorValue string `json:"priorValue,omitempty"`

	Module string `json:"module,omitempty"`

	Marker *host.Marker `json:"marker,omitempty"`
	// PriorBlock is the block's content before; nil when there was none.
	PriorBlock *string `json:"priorBlock,omitempty"`
	// PriorFileExists says whether the file of a block existed before.
	PriorFileExists bool `json:"priorFileExists,omitempty"`
	// AddedNewline: SetBlock added a newline before the block (see
	// host.SetBlockBytes), which its undo takes away again.
	AddedNewline bool `json:"addedNewline,omitempty"`

	Command *host.Command `json:"command,omitempty"`

	Residue  *host.Residue `json:"residue,omitempty"`
	Snapshot *Snapshot     `json:"snapshot,omitempty"`
}

// Prior is what was at a path before a step changed it.
type Prior struct {
	Exists bool          `json:"exists"`
	Kind   host.FileKind `json:"kind,omitempty"`
	Mode   fs.FileMode   `json:"mode,omitempty"`
	UID    int           `json:"uid,omitempty"`
	GID    int           `json:"gid,omitempty"`
	Target string        `json:"target,omitempty"`
	// Backup is the host path of the saved content of a file.
	Backup string `json:"backup,omitempty"`
}

// Snapshot is what existed when a Residue entry was recorded.
type Snapshot struct {
	// Existed and Names: a ResidueDir's directory and its entries; Mode,
	// UID and GID its permissions and owner, which a runtime may change.
	Existed bool        `json:"existed,omitempty"`
	Names   []string    `json:"names,omitempty"`
	Mode    fs.FileMode `json:"mode,omitempty"`
	UID     int         `json:"uid,omitempty"`
	GID     int         `json:"gid,omitempty"`
	// Chains: per iptables family ("iptables", "ip6tables"), per table,
	// the chains that existed. A family missing here could not be read.
	Chains map[string]map[string][]string `json:"chains,omitempty"`
	// Links: the network links that existed.
	Links []string `json:"links,omitempty"`
	// Unreadable says what could not be read when the snapshot was taken.
	Unreadable []string `json:"unreadable,omitempty"`
}

// String says what the step did, for reports.
func (e Entry) String() string {
	switch e.Op {
	case OpWrite:
		return "write " + e.Path
	case OpMkdir:
		return fmt.Sprintf("create directories %v", e.Created)
	case OpRemove:
		return "remove " + e.Path
	case OpSymlink:
		return "link " + e.Path
	case OpSetMode:
		return "set the mode and owner of " + e.Path
	case OpSetBlock:
		return fmt.Sprintf("set the %q block in %s", e.Marker.Begin, e.Path)
	case OpRemoveBlock:
		return fmt.Sprintf("remove the %q block from %s", e.Marker.Begin, e.Path)
	case OpSystemctl:
		if e.Action == host.DaemonReload {
			return "systemctl daemon-reload"
		}
		return fmt.Sprintf("systemctl %s %s", e.Action, e.Unit)
	case OpSysctl:
		return fmt.Sprintf("set sysctl %s=%s", e.Key, e.Value)
	case OpLoadModule:
		return "load kernel module " + e.Module
	case OpUnloadMod:
		return "unload kernel module " + e.Module
	case OpUnmount:
		return "unmount " + e.Path
	case OpRun:
		return "run " + e.Command.String()
	case OpResidue:
		return "note " + e.Residue.String()
	}
	return string(e.Op)
}
