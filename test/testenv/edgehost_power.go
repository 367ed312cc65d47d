package testenv

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Booting, stopping, rebooting and removing an edge host.

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
