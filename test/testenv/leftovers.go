package testenv

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// Leftovers lists whatever of a torn-down test environment still exists: a
// process the control plane started (or anything still running from its
// folder), its folder, a mount under it, and the network's namespaces, links,
// mounts and routes. Either argument may be nil. An empty list means clean.
func Leftovers(ctx context.Context, n *Network, cp *ControlPlane) []string {
	var left []string
	if cp != nil {
		left = append(left, controlPlaneLeftovers(cp)...)
	}
	if n != nil {
		left = append(left, networkLeftovers(ctx, n)...)
	}
	return left
}

func controlPlaneLeftovers(cp *ControlPlane) []string {
	var left []string
	for _, p := range cp.procs {
		if exited, _ := p.Exited(); !exited {
			left = append(left, fmt.Sprintf("process %s (pid %d) still running", p.Name, p.PID()))
		}
		// Anything it forked shares its process group.
		if err := syscall.Kill(-p.PID(), 0); err == nil || errors.Is(err, syscall.EPERM) {
			left = append(left, fmt.Sprintf("process group %d of %s still has members", p.PID(), p.Name))
		}
	}
	if cp.Dir == "" {
		return left
	}
	// Any process whose command line names the folder came from this control
	// plane, whoever its parent is now.
	for _, pid := range processesMentioning(cp.Dir + "/") {
		left = append(left, fmt.Sprintf("process %d still runs from %s", pid, cp.Dir))
	}
	if _, err := os.Stat(cp.Dir); err == nil {
		left = append(left, "folder "+cp.Dir)
	}
	for _, m := range mountsUnder(cp.Dir) {
		left = append(left, "mount "+m)
	}
	return left
}

// networkLeftovers lists whatever of n still exists on the host.
func networkLeftovers(ctx context.Context, n *Network) []string {
	var left []string
	prefix := fmt.Sprintf("%s%d-", namePrefix, n.Index)
	nss, _ := output(ctx, "ip", "netns", "list")
	for _, line := range strings.Split(nss, "\n") {
		if strings.HasPrefix(line, prefix) {
			left = append(left, "netns "+strings.Fields(line)[0])
		}
	}
	for _, m := range mountsUnder(netnsDir) {
		if strings.HasPrefix(filepath.Base(m), prefix) {
			left = append(left, "mount "+m)
		}
	}
	// Host-side links of this network: the bridge uplink ea<N>h and the
	// temporary edge ends ea<N>t<id>; not ea<N><digit>..., another network's.
	links, _ := output(ctx, "ip", "-o", "link", "show")
	for _, line := range strings.Split(links, "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		name := strings.TrimSuffix(strings.Split(f[1], "@")[0], ":")
		if name == n.hostLink || strings.HasPrefix(name, fmt.Sprintf("%s%dt", namePrefix, n.Index)) {
			left = append(left, "link "+name)
		}
	}
	routes, _ := output(ctx, "ip", "route", "show", "table", "all")
	for _, line := range strings.Split(routes, "\n") {
		for _, f := range strings.Fields(line) {
			if f == n.Subnet.String() || f == n.Subnet.Addr().String() {
				left = append(left, "route "+strings.TrimSpace(line))
				break
			}
		}
	}
	addrs, _ := output(ctx, "ip", "-o", "addr", "show")
	for _, ip := range []string{n.CloudIP.String(), n.HostIP.String()} {
		if strings.Contains(addrs, " "+ip+"/") {
			left = append(left, "address "+ip)
		}
	}
	return left
}

// mountsUnder lists the mount points at or below dir, from /proc/self/mountinfo.
func mountsUnder(dir string) []string {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return []string{"cannot read /proc/self/mountinfo: " + err.Error()}
	}
	dir = filepath.Clean(dir)
	var out []string
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 {
			continue
		}
		mp := unescapeMountPath(f[4])
		if mp == dir || strings.HasPrefix(mp, dir+"/") {
			out = append(out, mp)
		}
	}
	return out
}

// unescapeMountPath undoes mountinfo's octal escapes (\040 for a space...).
func unescapeMountPath(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// processesMentioning lists live processes whose command line contains s.
func processesMentioning(s string) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	self := os.Getpid()
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || !strings.Contains(string(cmdline), s) {
			continue
		}
		// A zombie has an empty cmdline, so anything here really runs.
		pids = append(pids, pid)
	}
	return pids
}
