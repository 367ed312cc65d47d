package testenv

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// Leftovers lists whatever of a torn-down edge host still exists: its nspawn
// or init process, anything still running from its folder, its folder and
// mounts, its cgroups in any hierarchy, and nspawn's per-machine folder. An
// empty list means clean.
func (h *EdgeHost) Leftovers() []string {
	var left []string
	if h.proc != nil {
		if exited, _ := h.proc.Exited(); !exited {
			left = append(left, fmt.Sprintf("systemd-nspawn (pid %d) still running", h.proc.PID()))
		}
		if err := syscall.Kill(-h.proc.PID(), 0); err == nil {
			left = append(left, fmt.Sprintf("process group %d of systemd-nspawn still has members", h.proc.PID()))
		}
	}
	if h.initAlive() {
		left = append(left, fmt.Sprintf("machine init (pid %d) still running", h.init))
	}
	if h.Dir != "" {
		for _, pid := range processesMentioning(h.Dir) {
			left = append(left, fmt.Sprintf("process %d still runs from %s", pid, h.Dir))
		}
		if _, err := os.Stat(h.Dir); err == nil {
			left = append(left, "folder "+h.Dir)
		}
		for _, m := range mountsUnder(h.Dir) {
			left = append(left, "mount "+m)
		}
	}
	// The machine's cgroups, wherever a hierarchy is mounted: plan them afresh
	// rather than trust what the host recorded.
	cgs := h.cgroups
	if planned, err := planMachineCgroups(h.Machine); err == nil {
		cgs = append(cgs, planned...)
	}
	seen := map[string]bool{}
	for _, c := range cgs {
		if seen[c.Dir] {
			continue
		}
		seen[c.Dir] = true
		if _, err := os.Stat(c.Dir); err == nil {
			left = append(left, "cgroup "+c.Dir)
		}
	}
	if h.Machine != "" {
		if _, err := os.Stat(filepath.Join("/run/systemd/nspawn/propagate", h.Machine)); err == nil {
			left = append(left, "folder /run/systemd/nspawn/propagate/"+h.Machine)
		}
	}
	return left
}
