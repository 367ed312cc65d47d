package testenv

// Cgroups of edge hosts.
//
// What was measured on this project's machines (cgroup v1 "hybrid": one
// mount per controller under /sys/fs/cgroup, name=systemd, and an empty
// cgroup2 at /sys/fs/cgroup/unified; PID 1 of the machine is not systemd):
//
//   - With the documented --bind=/sys/fs/cgroup, the machine sees the host's
//     whole tree while systemd-nspawn also gives it a cgroup namespace. systemd
//     inside then takes the host's root cgroup for its own: it made init.scope,
//     system.slice and user.slice at the top of every host hierarchy, and left
//     them there after poweroff. Two hosts would share system.slice and
//     kubepods, and a kubelet removes "orphaned" pod cgroups it does not know,
//     so one host's kubelet could kill the other's pods.
//   - Without that bind, nspawn mounts every hierarchy inside the machine's
//     cgroup namespace itself (so each shows only the machine's own subtree),
//     but bind-remounts the controllers read-only when there is no user
//     namespace; containerd, runc and systemd then cannot make cgroups. A
//     remount to read-write from inside works, but systemd keeps believing the
//     controllers are unusable until a daemon-reexec.
//   - What works from the first instant: before nspawn starts, the harness
//     makes a cgroup of the machine's own in every hierarchy (below the test
//     process's cgroup there), puts nspawn into it, and bind-mounts exactly
//     that subtree (for name=systemd and unified: its "payload" child, where
//     nspawn puts the container) onto a tmpfs at /sys/fs/cgroup. nspawn finds
//     the hierarchies already mounted and leaves them alone. Inside, the mounts
//     and /proc/self/cgroup agree (PID 1 is in /init.scope), the controllers
//     are writable, and everything the machine makes (systemd units,
//     kubepods.slice, runc containers, even an absolute cgroupfs path such as
//     ctr's /default/<id>) lands in its own subtree. Each host is separate from
//     every other and from the host, and teardown removes one subtree per
//     hierarchy.
//
// That also makes the systemd cgroup driver work: systemd inside owns its
// subtree, so the kubelet and containerd can both use cgroupDriver systemd
// (SystemdCgroup = true), which is what edge boxes that run systemd use.
//
// Pure cgroup v2 hosts are not handled (not measured here): NewEdgeHost says so.

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"
)

// cgroupRoot is where the host mounts its cgroup hierarchies.
const cgroupRoot = "/sys/fs/cgroup"

// machineCgroupPrefix names the cgroup of each edge host in every hierarchy.
const machineCgroupPrefix = "edgeadm-testenv-"

// cgroupHierarchy is one mounted cgroup hierarchy of the host.
type cgroupHierarchy struct {
	// Mount is where the host mounts it, e.g. /sys/fs/cgroup/memory.
	Mount string
	// Key is how /proc/self/cgroup names it: "cpu", "name=systemd", "" (v2).
	Key string
	// Own is the test process's cgroup in it, e.g. /process_api/<id>.
	Own string
	// Payload is true for the hierarchies nspawn moves the container into a
	// "payload" child of (name=systemd and the unified one).
	Payload bool
}

// machineCgroup is the cgroup of one edge host in one hierarchy.
type machineCgroup struct {
	cgroupHierarchy
	// Dir is its host path, e.g. /sys/fs/cgroup/memory/<own>/edgeadm-testenv-ea1-edge1.
	Dir string
}

// hostCgroupHierarchies lists the host's cgroup hierarchies. It refuses a
// pure cgroup v2 host, where edge hosts have not been measured.
func hostCgroupHierarchies() ([]cgroupHierarchy, error) {
	own, err := ownCgroups()
	if err != nil {
		return nil, err
	}
	mi, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil, fmt.Errorf("read mountinfo: %w", err)
	}
	var hs []cgroupHierarchy
	for _, line := range strings.Split(string(mi), "\n") {
		// <id> <parent> <maj:min> <root> <mount point> <opts> [optional...] - <fstype> <source> <super opts>
		pre, post, ok := strings.Cut(line, " - ")
		if !ok {
			continue
		}
		f, g := strings.Fields(pre), strings.Fields(post)
		if len(f) < 5 || len(g) < 3 {
			continue
		}
		mount := unescapeMountPath(f[4])
		switch {
		case g[0] == "cgroup2" && mount == cgroupRoot:
			return nil, errors.New("this host uses pure cgroup v2; edge hosts are measured and supported only on cgroup v1 or hybrid hosts (see edgehost_cgroup.go)")
		case g[0] == "cgroup2" && filepath.Dir(mount) == cgroupRoot:
			hs = append(hs, cgroupHierarchy{Mount: mount, Key: "", Own: own[""], Payload: true})
		case g[0] == "cgroup" && filepath.Dir(mount) == cgroupRoot:
			key := cgroupV1Key(g[2])
			o, ok := own[key]
			if !ok {
				return nil, fmt.Errorf("cgroup hierarchy %s (%s) is not in /proc/self/cgroup", mount, key)
			}
			hs = append(hs, cgroupHierarchy{Mount: mount, Key: key, Own: o, Payload: key == "name=systemd"})
		}
	}
	if len(hs) == 0 {
		return nil, fmt.Errorf("no cgroup hierarchies mounted under %s", cgroupRoot)
	}
	return hs, nil
}

// cgroupV1Key turns a v1 superblock's options ("rw,xattr,name=systemd",
// "rw,cpu,cpuacct") into the controller list /proc/self/cgroup shows for it.
func cgroupV1Key(superOpts string) string {
	var keep []string
	for _, o := range strings.Split(superOpts, ",") {
		switch {
		case o == "rw" || o == "ro" || o == "xattr" || o == "noprefix" || o == "clone_children" || o == "cpuset_v2_mode":
		case strings.HasPrefix(o, "release_agent="):
		default:
			keep = append(keep, o)
		}
	}
	return strings.Join(keep, ",")
}

// ownCgroups maps each hierarchy key of /proc/self/cgroup to this process's path.
func ownCgroups() (map[string]string, error) {
	data, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return nil, fmt.Errorf("read /proc/self/cgroup: %w", err)
	}
	own := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) == 3 {
			own[parts[1]] = parts[2]
		}
	}
	return own, nil
}

// planMachineCgroups says where machine's cgroups go: below the test process's
// own cgroup in every hierarchy, so the machine is accounted where the test is.
func planMachineCgroups(machine string) ([]machineCgroup, error) {
	hs, err := hostCgroupHierarchies()
	if err != nil {
		return nil, err
	}
	cgs := make([]machineCgroup, len(hs))
	for i, h := range hs {
		cgs[i] = machineCgroup{cgroupHierarchy: h, Dir: filepath.Join(h.Mount, h.Own, machineCgroupPrefix+machine)}
	}
	return cgs, nil
}

// create makes the cgroup (and its payload child), removing whatever an
// earlier boot of the machine left below it.
func (c machineCgroup) create() error {
	if err := removeCgroupTree(c.Dir, false); err != nil {
		return err
	}
	if err := os.Mkdir(c.Dir, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("make cgroup %s: %w", c.Dir, err)
	}
	// A new cpuset cgroup has no CPUs or memory nodes; nothing can join it
	// until it gets its parent's.
	for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
		if v, err := os.ReadFile(filepath.Join(filepath.Dir(c.Dir), f)); err == nil {
			if err := os.WriteFile(filepath.Join(c.Dir, f), v, 0o644); err != nil {
				return fmt.Errorf("copy %s to %s: %w", f, c.Dir, err)
			}
		}
	}
	if c.Payload {
		if err := os.Mkdir(c.inner(), 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("make cgroup %s: %w", c.inner(), err)
		}
	}
	return nil
}

// inner is the host path the machine sees as the root of this hierarchy.
func (c machineCgroup) inner() string {
	if c.Payload {
		return filepath.Join(c.Dir, "payload")
	}
	return c.Dir
}

// nspawnCgroupArgs are the nspawn flags that give the machine exactly its own
// subtrees as /sys/fs/cgroup/<hierarchy>.
func nspawnCgroupArgs(cgs []machineCgroup) []string {
	args := []string{"--tmpfs=" + cgroupRoot + ":mode=755"}
	for _, c := range cgs {
		args = append(args, fmt.Sprintf("--bind=%s:%s", c.inner(), c.Mount))
	}
	return args
}

// joinCgroupsArgv wraps argv in a shell that moves itself into every cgroup
// and then execs argv, so the PID the harness records is argv's own and
// everything argv forks starts inside the machine's cgroups.
func joinCgroupsArgv(cgs []machineCgroup, argv []string) []string {
	script := `set -e; while [ "$1" != -- ]; do echo $$ > "$1"; shift; done; shift; exec "$@"`
	out := []string{"/bin/sh", "-c", script, "sh"}
	for _, c := range cgs {
		out = append(out, filepath.Join(c.Dir, "cgroup.procs"))
	}
	return append(append(out, "--"), argv...)
}

// removeCgroupTree removes every cgroup below dir, deepest first, and dir too
// when withRoot. A cgroup that still has processes fails with EBUSY.
func removeCgroupTree(dir string, withRoot bool) error {
	var dirs []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if d.IsDir() && (withRoot || p != dir) {
			dirs = append(dirs, p)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("walk cgroup %s: %w", dir, err)
	}
	sort.Slice(dirs, func(i, j int) bool { return len(dirs[i]) > len(dirs[j]) })
	var errs []error
	for _, d := range dirs {
		if err := syscall.Rmdir(d); err != nil && !errors.Is(err, syscall.ENOENT) {
			procs, _ := os.ReadFile(filepath.Join(d, "cgroup.procs"))
			errs = append(errs, fmt.Errorf("remove cgroup %s (processes: %q): %w", d, strings.Fields(string(procs)), err))
		}
	}
	return errors.Join(errs...)
}

// removeMachineCgroups removes the machine's cgroups in every hierarchy. The
// kernel frees a cgroup a moment after its last process is reaped, so it
// retries, bounded.
func removeMachineCgroups(ctx context.Context, cgs []machineCgroup) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var last error
	err := Poll(ctx, 100*time.Millisecond, func(context.Context) (bool, error) {
		var errs []error
		for _, c := range cgs {
			errs = append(errs, removeCgroupTree(c.Dir, true))
		}
		last = errors.Join(errs...)
		return last == nil, nil
	})
	if err != nil {
		return fmt.Errorf("remove edge host cgroups: %w", errors.Join(err, last))
	}
	return nil
}

// cgroupTreeProcs lists the PIDs in dir's cgroup and every cgroup below it.
func cgroupTreeProcs(dir string) []string {
	var pids []string
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return nil
		}
		if data, err := os.ReadFile(filepath.Join(p, "cgroup.procs")); err == nil {
			pids = append(pids, strings.Fields(string(data))...)
		}
		return nil
	})
	return pids
}

// killMachineCgroups SIGKILLs whatever still runs in the machine's cgroups,
// with the unified hierarchy's cgroup.kill (the kernel kills the whole
// subtree), and waits, bounded, until they are empty. It is the last resort
// when the machine's init outlived systemd-nspawn.
func killMachineCgroups(ctx context.Context, cgs []machineCgroup) error {
	for _, c := range cgs {
		if c.Key != "" || len(cgroupTreeProcs(c.Dir)) == 0 {
			continue
		}
		if err := os.WriteFile(filepath.Join(c.Dir, "cgroup.kill"), []byte("1"), 0o644); err != nil {
			return fmt.Errorf("kill the processes in cgroup %s: %w", c.Dir, err)
		}
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	return Poll(ctx, 50*time.Millisecond, func(context.Context) (bool, error) {
		for _, c := range cgs {
			if left := cgroupTreeProcs(c.Dir); len(left) > 0 {
				return false, fmt.Errorf("processes %v still in cgroup %s", left, c.Dir)
			}
		}
		return true, nil
	})
}
