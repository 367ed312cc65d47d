package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"time"
)

// EdgeHostOptions choose how an edge host is made. Zero values are defaults.
type EdgeHostOptions struct {
	// Suite is the root filesystem under Paths.Rootfs to boot (default "bookworm").
	Suite string
	// BootTimeout bounds each boot until systemd is up (default 2 minutes).
	BootTimeout time.Duration
	// PodCIDR is the pod subnet InstallRuntime gives the host's CNI bridge
	// (default 10.244.<last byte of the host's IP>.0/24).
	PodCIDR string
	// ServiceCIDR is the cluster's service range, routed from pods to the host
	// (default 10.96.0.0/12, kubeadm's and ControlPlaneOptions' default).
	ServiceCIDR string
}

// EdgeHost is a Debian machine with systemd, booted by systemd-nspawn inside
// the network namespace of its Link, the way a real edge box sits behind its
// uplink. Its disk is an overlay on the cached root filesystem (which it never
// changes) and survives Reboot; Teardown removes it.
type EdgeHost struct {
	// Name is the host's name: its hostname and, later, its Node name.
	Name string
	// Machine is the unique machine name on this computer (the namespace name).
	Machine string
	// Dir is the host-side folder with the disk, state and log (mode 0700).
	Dir string
	// Root is the machine's root directory as seen from the host.
	Root string
	// RootMode says how Root was made: "overlay", or "copy" where overlayfs
	// does not work.
	RootMode string
	// LogPath is the console and nspawn log of every boot.
	LogPath string
	// BootTime is how long the last boot took until systemd was up.
	BootTime time.Duration

	net      *Network
	link     *Link
	paths    Paths
	opts     EdgeHostOptions
	rootfs   string
	uuid     string
	cgroups  []machineCgroup
	proc     *Process
	init     int    // PID of the machine's init (systemd) while it runs
	initTime string // its start time, against PID reuse
	tornDown bool
}

// Host-side layout of Dir.
const (
	edgeUpperDir = "upper"
	edgeWorkDir  = "work"
	edgeRootDir  = "root"
	// State folders bind-mounted into the machine: containerd's overlayfs
	// snapshotter cannot use an overlayfs root as its upper layer, and the
	// kubelet's filesystem stats need a real block-device filesystem.
	edgeStateDir = "state"
)

// edgeStateMounts are the machine paths that live in Dir/state/<base> on the
// host's own filesystem instead of on the overlay.
var edgeStateMounts = []string{"/var/lib/containerd", "/var/lib/kubelet"}

var hostNameRE = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]{0,30}[a-z0-9])?$`)

// NewEdgeHost makes an edge host named name in network n and boots it,
// waiting (bounded by BootTimeout) until systemd in it is running or degraded.
// On failure nothing of it is left behind but its namespace, which
// n.Teardown removes.
func NewEdgeHost(ctx context.Context, n *Network, paths Paths, name string, opts EdgeHostOptions) (*EdgeHost, error) {
	if !hostNameRE.MatchString(name) {
		return nil, fmt.Errorf("edge host name %q: want lower-case letters, digits and '-', at most 32", name)
	}
	if opts.Suite == "" {
		opts.Suite = "bookworm"
	}
	if opts.BootTimeout == 0 {
		opts.BootTimeout = 2 * time.Minute
	}
	rootfs := filepath.Join(paths.Rootfs, opts.Suite)
	if _, err := os.Stat(filepath.Join(rootfs, "usr/lib/systemd/systemd")); err != nil {
		return nil, fmt.Errorf("%w: no systemd in root filesystem %s", ErrNoCache, rootfs)
	}
	if _, err := exec.LookPath("systemd-nspawn"); err != nil {
		return nil, fmt.Errorf("edge hosts need systemd-nspawn (apt-get install systemd-container): %w", err)
	}
	link, err := n.AddEdge(ctx, name)
	if err != nil {
		return nil, err
	}
	h := &EdgeHost{Name: name, Machine: link.NS, net: n, link: link, paths: paths, opts: opts, rootfs: rootfs}
	if err := h.make(ctx); err != nil {
		return nil, errors.Join(err, h.Teardown(context.WithoutCancel(ctx)))
	}
	if err := h.Start(ctx); err != nil {
		return nil, errors.Join(err, h.Teardown(context.WithoutCancel(ctx)))
	}
	return h, nil
}

// make lays out Dir, mounts the root and writes the host's identity.
func (h *EdgeHost) make(ctx context.Context) error {
	dir, err := os.MkdirTemp("", "edgeadm-edgehost-"+h.Machine+"-")
	if err != nil {
		return fmt.Errorf("make edge host folder: %w", err)
	}
	h.Dir = dir
	h.Root = filepath.Join(dir, edgeRootDir)
	h.LogPath = filepath.Join(dir, "nspawn.log")
	for _, d := range []string{edgeUpperDir, edgeWorkDir, edgeRootDir} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			return err
		}
	}
	for _, m := range edgeStateMounts {
		if err := os.MkdirAll(h.statePath(m), 0o755); err != nil {
			return err
		}
	}
	if err := h.mountRoot(ctx); err != nil {
		return err
	}
	if h.cgroups, err = planMachineCgroups(h.Machine); err != nil {
		return err
	}
	id := make([]byte, 16)
	_, _ = rand.Read(id)
	h.uuid = hex.EncodeToString(id)
	hosts := fmt.Sprintf("127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\nff02::1\t\tip6-allnodes\nff02::2\t\tip6-allrouters\n%s\t%s\n",
		h.link.IP, h.Name)
	files := []struct {
		path, data string
	}{
		{"/etc/hostname", h.Name + "\n"},
		{"/etc/hosts", hosts},
		// One stable ID per host, kept across reboots (nspawn gets it as --uuid).
		{"/etc/machine-id", h.uuid + "\n"},
		// No DNS server is reachable from a test network; say so rather than
		// keep the build machine's resolver, which is not for edge hosts.
		{"/etc/resolv.conf", "# edgeadm test environment: no DNS server is reachable from this edge host.\n"},
	}
	for _, f := range files {
		if err := h.WriteFile(f.path, []byte(f.data), 0o644); err != nil {
			return err
		}
	}
	return h.installSysctlShim()
}

func (h *EdgeHost) statePath(machinePath string) string {
	return filepath.Join(h.Dir, edgeStateDir, filepath.Base(machinePath))
}

// mountRoot makes Root an overlay with the cached rootfs as its read-only
// lower layer, or a copy of it where overlayfs does not work.
func (h *EdgeHost) mountRoot(ctx context.Context) error {
	opts := fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s", h.rootfs,
		filepath.Join(h.Dir, edgeUpperDir), filepath.Join(h.Dir, edgeWorkDir))
	mountErr := run(ctx, "mount", "-t", "overlay", "overlay", "-o", opts, h.Root)
	if mountErr == nil {
		h.RootMode = "overlay"
		return nil
	}
	if err := run(ctx, "cp", "-a", "--reflink=auto", h.rootfs+"/.", h.Root); err != nil {
		return fmt.Errorf("make the edge host's root: overlay failed (%v) and so did copying: %w", mountErr, err)
	}
	h.RootMode = "copy"
	return nil
}

// Link is the host's uplink to the cloud, to Cut, Restore or Degrade.
func (h *EdgeHost) Link() *Link { return h.link }

// IP is the host's address on the cloud bridge.
func (h *EdgeHost) IP() netip.Addr { return h.link.IP }

// InitPID is the host-side PID of the machine's init while it runs, else 0.
func (h *EdgeHost) InitPID() int { return h.init }

// Running reports whether the machine is up.
func (h *EdgeHost) Running() bool {
	if h.proc == nil {
		return false
	}
	exited, _ := h.proc.Exited()
	return !exited
}

// Start boots the machine (after Stop, or a crash) and waits, bounded by
// BootTimeout, until systemd is running or degraded.
func (h *EdgeHost) Start(ctx context.Context) error {
	if h.tornDown {
		return fmt.Errorf("edge host %s is torn down", h.Name)
	}
	if h.Running() {
		return fmt.Errorf("edge host %s is already running", h.Name)
	}
	// A machine whose nspawn died may still run: end it before booting again.
	if err := h.Stop(ctx); err != nil {
		return err
	}
	for _, c := range h.cgroups {
		if err := c.create(); err != nil {
			return fmt.Errorf("edge host %s: %w", h.Name, err)
		}
	}
	argv := []string{
		"systemd-nspawn", "--boot",
		// No host systemd or bus here: without these nspawn fails to register.
		"--register=no", "--keep-unit",
		"--capability=all",
		// runc needs the keyring calls ("unable to join session keyring").
		"--system-call-filter=add_key keyctl bpf @keyring",
		// --property=DeviceAllow= is left out: without registration nspawn makes no
		// scope and says the setting has no effect. The machine's devices cgroup is
		// a child of the test's, which allows every device.
		"--network-namespace-path=" + filepath.Join(netnsDir, h.link.NS),
		"--directory=" + h.Root,
		"--machine=" + h.Machine,
		"--uuid=" + h.uuid,
		"--console=read-only",
		// Nothing of the build machine leaks in or is linked out.
		"--link-journal=no", "--resolv-conf=off", "--timezone=off",
	}
	for _, m := range edgeStateMounts {
		argv = append(argv, fmt.Sprintf("--bind=%s:%s", h.statePath(m), m))
	}
	// The kubelet's OOM watcher reads the kernel log and will not start
	// without it; nspawn gives the machine no /dev/kmsg of its own.
	argv = append(argv, "--bind-ro=/dev/kmsg")
	argv = append(argv, nspawnCgroupArgs(h.cgroups)...)
	start := time.Now()
	// nspawn mounts /proc/sys read-only; "network" leaves /proc/sys/net
	// writable, which is the edge namespace's own (the CNI bridge plugin
	// turns on ip_forward there). The rest of /proc/sys is the shared kernel's.
	env := []string{"SYSTEMD_NSPAWN_API_VFS_WRITABLE=network"}
	p, err := StartProcess("nspawn", h.Dir, joinCgroupsArgv(h.cgroups, argv), env)
	if err != nil {
		return fmt.Errorf("boot edge host %s: %w", h.Name, err)
	}
	h.proc, h.init, h.initTime = p, 0, ""
	if err := h.waitBooted(ctx); err != nil {
		return fmt.Errorf("boot edge host %s: %w\n%s", h.Name, err, h.logTail())
	}
	h.BootTime = time.Since(start)
	return nil
}

// waitBooted finds the machine's init and waits until systemd is up.
func (h *EdgeHost) waitBooted(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, h.opts.BootTimeout)
	defer cancel()
	state := ""
	err := Poll(ctx, 100*time.Millisecond, func(ctx context.Context) (bool, error) {
		if exited, err := h.proc.Exited(); exited {
			return false, fmt.Errorf("systemd-nspawn exited: %v", err)
		}
		if h.init == 0 {
			pid, err := nspawnInit(h.proc.PID())
			if err != nil || pid == 0 {
				return false, err
			}
			h.init, h.initTime = pid, procStartTime(pid)
		}
		out, _, _ := h.Exec(ctx, "systemctl", "is-system-running")
		state = strings.TrimSpace(out)
		return state == "running" || state == "degraded", nil
	})
	if exited, _ := h.proc.Exited(); exited {
		return fmt.Errorf("systemd-nspawn exited during boot (systemd state %q)", state)
	}
	if err != nil {
		return fmt.Errorf("systemd did not reach running within %s (state %q): %w", h.opts.BootTimeout, state, err)
	}
	return h.checkCgroups()
}

// checkCgroups makes sure the machine's init sits in the machine's own
// cgroups: nspawn's placement of the container is what the cgroup layout
// (edgehost_cgroup.go) relies on.
func (h *EdgeHost) checkCgroups() error {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", h.init))
	if err != nil {
		return fmt.Errorf("read the cgroups of the machine's init: %w", err)
	}
	in := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		if parts := strings.SplitN(line, ":", 3); len(parts) == 3 {
			in[parts[1]] = parts[2]
		}
	}
	for _, c := range h.cgroups {
		want := strings.TrimPrefix(c.inner(), c.Mount)
		if got := in[c.Key]; got != want && !strings.HasPrefix(got, want+"/") {
			return fmt.Errorf("the machine's init is in cgroup %q of hierarchy %s, not below %q: this systemd-nspawn places containers differently from the one measured",
				got, c.Mount, want)
		}
	}
	return nil
}

// nspawnInit finds the machine's init: systemd-nspawn's child whose PID in
// its own PID namespace is 1 (NSpid in /proc/<pid>/status ends in 1). nspawn
// forks an intermediate child first, which forks init in a new PID namespace
// and exits; nspawn is a subreaper, so init becomes its direct child.
func nspawnInit(nspawn int) (int, error) {
	tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", nspawn))
	if err != nil {
		return 0, err
	}
	for _, t := range tasks {
		data, err := os.ReadFile(t)
		if err != nil {
			continue
		}
		for _, f := range strings.Fields(string(data)) {
			status, err := os.ReadFile("/proc/" + f + "/status")
			if err != nil {
				continue
			}
			for _, line := range strings.Split(string(status), "\n") {
				if rest, ok := strings.CutPrefix(line, "NSpid:"); ok {
					ids := strings.Fields(rest)
					if len(ids) > 1 && ids[len(ids)-1] == "1" {
						var pid int
						_, err := fmt.Sscan(ids[0], &pid)
						return pid, err
					}
				}
			}
		}
	}
	return 0, nil
}

// procStartTime is field 22 of /proc/<pid>/stat, which with the PID names
// one process for good, or "" when the process is gone or a zombie (a killed
// machine's init is reparented to the build machine's PID 1, which reaps it
// when it gets to it).
func procStartTime(pid int) string {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ""
	}
	// The command name (field 2) may hold spaces; it ends at the last ')'.
	s := string(data)
	if i := strings.LastIndexByte(s, ')'); i >= 0 {
		if f := strings.Fields(s[i+1:]); len(f) > 19 && f[0] != "Z" && f[0] != "X" {
			return f[19]
		}
	}
	return ""
}

// initAlive reports whether the machine's init recorded at boot still runs.
func (h *EdgeHost) initAlive() bool {
	return h.init != 0 && h.initTime != "" && procStartTime(h.init) == h.initTime
}

// logTail is the end of the nspawn log, for error messages.
func (h *EdgeHost) logTail() string {
	data, err := os.ReadFile(h.LogPath)
	if err != nil {
		return fmt.Sprintf("(no nspawn log: %v)", err)
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > 30 {
		lines = lines[len(lines)-30:]
	}
	return "nspawn log " + h.LogPath + " ends:\n  " + strings.Join(lines, "\n  ")
}

// Stop powers the machine off cleanly: SIGTERM to systemd-nspawn, which asks
// systemd inside to halt. After a bounded wait (the ctx deadline, at most one
// minute) it SIGKILLs nspawn, then the machine's init by PID (a killed nspawn
// leaves its machine running: measured), then anything left in the machine's
// cgroups.
func (h *EdgeHost) Stop(ctx context.Context) error {
	if h.proc == nil {
		return nil
	}
	grace := time.Minute
	if d, ok := ctx.Deadline(); ok && time.Until(d) < grace {
		grace = max(time.Until(d), time.Second)
	}
	var errs []error
	if exited, _ := h.proc.Exited(); !exited {
		// Only nspawn itself: the machine's processes are in their own sessions,
		// and SIGTERM means "re-execute" to systemd.
		_ = syscall.Kill(h.proc.PID(), syscall.SIGTERM)
		wctx, cancel := context.WithTimeout(ctx, grace)
		_ = h.proc.Wait(wctx)
		cancel()
		if exited, _ := h.proc.Exited(); !exited {
			errs = append(errs, fmt.Errorf("edge host %s did not power off within %s; killed", h.Name, grace))
			errs = append(errs, h.proc.Stop(0))
		}
	}
	if h.initAlive() {
		// Killing PID 1 of the machine's PID namespace kills all of it.
		_ = syscall.Kill(h.init, syscall.SIGKILL)
	}
	h.init, h.initTime = 0, ""
	if err := killMachineCgroups(ctx, h.cgroups); err != nil {
		errs = append(errs, fmt.Errorf("edge host %s: %w", h.Name, err))
	}
	return errors.Join(errs...)
}

// Reboot reboots the machine from inside (systemctl reboot) and waits until
// it is up again. Its disk is kept; the link stays as it is, so a test can
// reboot a host whose uplink is cut. systemd-nspawn ends with exit status 133
// when the machine asks for a reboot; the harness then boots it again.
func (h *EdgeHost) Reboot(ctx context.Context) error {
	if !h.Running() {
		return fmt.Errorf("edge host %s is not running", h.Name)
	}
	_, _, _ = h.Exec(ctx, "systemctl", "--no-block", "reboot")
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	err := h.proc.Wait(wctx)
	cancel()
	if exited, _ := h.proc.Exited(); !exited {
		return fmt.Errorf("edge host %s did not go down for reboot within a minute\n%s", h.Name, h.logTail())
	}
	var ee *exec.ExitError
	if err != nil && (!errors.As(err, &ee) || ee.ExitCode() != 133) {
		return fmt.Errorf("edge host %s: systemd-nspawn ended with %v, not the reboot status 133\n%s", h.Name, err, h.logTail())
	}
	h.init, h.initTime = 0, ""
	return h.Start(ctx)
}

// Teardown stops the machine and removes everything of it: the cgroups, the
// mounts and Dir. It keeps going past errors and returns them all. The
// machine's network namespace belongs to the Network, whose Teardown removes it.
func (h *EdgeHost) Teardown(ctx context.Context) error {
	if h.tornDown {
		return nil
	}
	h.tornDown = true
	var errs []error
	errs = append(errs, h.Stop(ctx))
	errs = append(errs, removeMachineCgroups(ctx, h.cgroups))
	// nspawn keeps a folder per machine to propagate mounts into it, and cannot
	// always remove it itself.
	if err := os.RemoveAll(filepath.Join("/run/systemd/nspawn/propagate", h.Machine)); err != nil {
		errs = append(errs, err)
	}
	if h.Dir != "" {
		mounts := mountsUnder(h.Dir)
		for i := len(mounts) - 1; i >= 0; i-- {
			if err := run(ctx, "umount", mounts[i]); err != nil {
				errs = append(errs, err)
			}
		}
		if left := mountsUnder(h.Dir); len(left) > 0 {
			// Never remove through a mount: that would reach whatever it shows.
			errs = append(errs, fmt.Errorf("edge host %s: still mounted, so %s is kept: %v", h.Name, h.Dir, left))
		} else if err := os.RemoveAll(h.Dir); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
