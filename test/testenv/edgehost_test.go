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
	"testing"
	"time"
)

// edgePaths returns the cache when edge hosts can run here: root,
// systemd-nspawn, the rootfs and the named binaries of the cache. Otherwise it
// skips the test, or fails it when EDGEADM_E2E=1.
func edgePaths(t *testing.T, bins ...string) Paths {
	t.Helper()
	if os.Geteuid() != 0 {
		SkipOrFail(t, "edge hosts need root")
	}
	for _, tool := range []string{"ip", "nsenter", "systemd-nspawn", "mount"} {
		if _, err := exec.LookPath(tool); err != nil {
			SkipOrFail(t, fmt.Sprintf("edge hosts need %s (scripts/test-env.sh apt): %v", tool, err))
		}
	}
	// Only the parts this test uses: LocatePaths also wants the control plane.
	paths, _ := LocatePaths()
	need := []string{filepath.Join(paths.Rootfs, "bookworm", "usr/lib/systemd/systemd")}
	for _, b := range bins {
		need = append(need, paths.BinPath(b))
	}
	for _, f := range need {
		if _, err := os.Stat(f); err != nil {
			SkipOrFail(t, fmt.Sprintf("%v: %s is missing", ErrNoCache, f))
		}
	}
	return paths
}

// newTestNetwork makes a network torn down at the end of the test, with a
// check that nothing of it is left.
func newTestNetwork(t *testing.T) *Network {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	n, err := NewNetwork(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := n.Teardown(ctx); err != nil {
			t.Errorf("network teardown: %v", err)
		}
		if left := networkLeftovers(ctx, n); len(left) > 0 {
			t.Errorf("network teardown left: %v", left)
		}
	})
	return n
}

// newTestEdgeHost boots an edge host torn down (and checked for leftovers) at
// the end of the test, before its network.
func newTestEdgeHost(t *testing.T, n *Network, paths Paths, name string) *EdgeHost {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	h, err := NewEdgeHost(ctx, n, paths, name, EdgeHostOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if err := h.Teardown(ctx); err != nil {
			t.Errorf("edge host teardown: %v", err)
		}
		if left := h.Leftovers(); len(left) > 0 {
			t.Errorf("edge host teardown left:\n  %s", strings.Join(left, "\n  "))
		}
	})
	t.Logf("edge host %s (%s, root %s) booted in %s", h.Name, h.IP(), h.RootMode, h.BootTime.Round(time.Millisecond))
	return h
}

func TestEdgeHostBootsWithSystemd(t *testing.T) {
	paths := edgePaths(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	n := newTestNetwork(t)
	h := newTestEdgeHost(t, n, paths, "edge1")

	mustExec := func(argv ...string) string {
		t.Helper()
		out, _, err := h.Exec(ctx, argv...)
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(out)
	}
	if got := mustExec("hostname"); got != "edge1" {
		t.Errorf("hostname = %q, want edge1", got)
	}
	if got := mustExec("cat", "/proc/1/comm"); got != "systemd" {
		t.Errorf("PID 1 inside is %q, want systemd", got)
	}
	// The machine has the edge namespace's network, and no default route.
	if got := mustExec("ip", "-4", "-o", "addr", "show", "eth0"); !strings.Contains(got, h.IP().String()+"/24") {
		t.Errorf("eth0 inside: %q, want %s/24", got, h.IP())
	}
	if got := mustExec("ip", "route", "show", "default"); got != "" {
		t.Errorf("edge host has a default route: %q", got)
	}
	// Its own cgroup tree: PID 1 in /init.scope, controllers writable.
	if got := mustExec("cat", "/proc/1/cgroup"); !strings.Contains(got, "name=systemd:/init.scope") {
		t.Errorf("PID 1's cgroups inside: %q, want name=systemd:/init.scope", got)
	}
	mustExec("systemd-run", "--unit=edgeadm-probe", "-p", "MemoryLimit=64M", "--", "sleep", "300")
	probe := filepath.Join(h.cgroups[0].Dir, "system.slice", "edgeadm-probe.service")
	for _, c := range h.cgroups {
		if c.Key == "memory" {
			probe = filepath.Join(c.Dir, "system.slice", "edgeadm-probe.service", "memory.limit_in_bytes")
		}
	}
	if data, err := os.ReadFile(probe); err != nil || strings.TrimSpace(string(data)) != fmt.Sprint(64<<20) {
		t.Errorf("a unit's memory limit is not in the edge host's own cgroup %s: %q %v", probe, data, err)
	}
	// The cache was not touched: writes land in the overlay's upper layer.
	mustExec("sh", "-c", "echo hello > /etc/edgeadm-probe")
	if _, err := os.Stat(filepath.Join(paths.Rootfs, "bookworm", "etc", "edgeadm-probe")); err == nil {
		t.Errorf("a write inside the edge host reached the cached rootfs")
	}
	if data, err := h.ReadFile("/etc/edgeadm-probe"); err != nil || string(data) != "hello\n" {
		t.Errorf("ReadFile: %q %v", data, err)
	}
	// Files written from outside show inside, on the overlay and in the
	// state folders bind-mounted into the machine alike.
	for _, p := range []string{"/etc/edgeadm/probe", "/var/lib/kubelet/probe", "/var/lib/containerd/probe"} {
		if err := h.WriteFile(p, []byte(p), 0o600); err != nil {
			t.Fatal(err)
		}
		if got := mustExec("cat", p); got != p {
			t.Errorf("inside, %s holds %q", p, got)
		}
		if got := mustExec("stat", "-c", "%a", p); got != "600" {
			t.Errorf("inside, %s has mode %s, want 600", p, got)
		}
	}
}

// startCloudListener runs an echo server in the cloud namespace (the test
// binary's listen helper) and returns its address.
func startCloudListener(t *testing.T, n *Network, port int) string {
	t.Helper()
	addr := fmt.Sprintf("%s:%d", n.CloudIP, port)
	lis := exec.Command("nsenter", "--net=/run/netns/"+n.CloudNS, "--", os.Args[0])
	lis.Env = append(os.Environ(), "EDGEADM_TESTENV_HELPER=listen:"+addr)
	stdout, err := lis.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := lis.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = lis.Process.Kill(); _ = lis.Wait() })
	buf := make([]byte, 10)
	if _, err := stdout.Read(buf); err != nil {
		t.Fatalf("listener in the cloud namespace did not start: %v", err)
	}
	return addr
}

// dialFromHost connects from inside the edge host to addr with bash's
// /dev/tcp, giving up after 3 seconds.
func dialFromHost(ctx context.Context, h *EdgeHost, addr string) error {
	host, port, _ := strings.Cut(addr, ":")
	_, _, err := h.Exec(ctx, "timeout", "3", "bash", "-c", fmt.Sprintf("exec 3<>/dev/tcp/%s/%s", host, port))
	return err
}

func TestEdgeHostLinkCutAndRestore(t *testing.T) {
	paths := edgePaths(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	n := newTestNetwork(t)
	h := newTestEdgeHost(t, n, paths, "edge1")
	addr := startCloudListener(t, n, 7777)

	if err := dialFromHost(ctx, h, addr); err != nil {
		t.Fatalf("edge host cannot reach the cloud: %v", err)
	}
	if err := h.Link().Cut(ctx); err != nil {
		t.Fatal(err)
	}
	if err := dialFromHost(ctx, h, addr); err == nil {
		t.Errorf("edge host still reaches the cloud after the link was cut")
	}
	if err := h.Link().Restore(ctx); err != nil {
		t.Fatal(err)
	}
	if err := Poll(ctx, 100*time.Millisecond, func(ctx context.Context) (bool, error) { return dialFromHost(ctx, h, addr) == nil, nil }); err != nil {
		t.Errorf("edge host does not reach the cloud after the link was restored: %v", err)
	}
}

func TestEdgeHostRebootKeepsDiskEvenWithLinkCut(t *testing.T) {
	paths := edgePaths(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	n := newTestNetwork(t)
	h := newTestEdgeHost(t, n, paths, "edge1")
	addr := startCloudListener(t, n, 7778)

	if _, _, err := h.Exec(ctx, "sh", "-c", "echo before-reboot > /var/lib/edgeadm-marker && sync"); err != nil {
		t.Fatal(err)
	}
	// The init's PID changes with every boot (the kernel's boot_id would not:
	// it is the build machine's, shared by every machine on it).
	oldInit := h.InitPID()

	if err := h.Link().Cut(ctx); err != nil {
		t.Fatal(err)
	}
	if err := h.Reboot(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("rebooted with the link cut in %s", h.BootTime.Round(time.Millisecond))
	if h.InitPID() == oldInit {
		t.Errorf("init PID %d is the same after Reboot: the machine did not reboot", oldInit)
	}
	if data, err := h.ReadFile("/var/lib/edgeadm-marker"); err != nil || string(data) != "before-reboot\n" {
		t.Errorf("file written before the reboot: %q %v", data, err)
	}
	if out, _, err := h.Exec(ctx, "systemctl", "is-system-running"); err != nil && strings.TrimSpace(out) != "degraded" {
		t.Errorf("after reboot systemd is %q: %v", out, err)
	}
	if err := dialFromHost(ctx, h, addr); err == nil {
		t.Errorf("the link came back by itself with the reboot")
	}
	if err := h.Link().Restore(ctx); err != nil {
		t.Fatal(err)
	}
	if err := Poll(ctx, 100*time.Millisecond, func(ctx context.Context) (bool, error) { return dialFromHost(ctx, h, addr) == nil, nil }); err != nil {
		t.Errorf("edge host does not reach the cloud after the link was restored: %v", err)
	}
}

func TestTwoEdgeHostsDoNotInterfere(t *testing.T) {
	paths := edgePaths(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	n := newTestNetwork(t)
	a := newTestEdgeHost(t, n, paths, "edge-a")
	b := newTestEdgeHost(t, n, paths, "edge-b")
	addr := startCloudListener(t, n, 7779)

	read := func(h *EdgeHost, argv ...string) string {
		t.Helper()
		out, _, err := h.Exec(ctx, argv...)
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(out)
	}
	if ha, hb := read(a, "hostname"), read(b, "hostname"); ha != "edge-a" || hb != "edge-b" {
		t.Errorf("hostnames %q and %q, want edge-a and edge-b", ha, hb)
	}
	if ma, mb := read(a, "cat", "/etc/machine-id"), read(b, "cat", "/etc/machine-id"); ma == mb {
		t.Errorf("both hosts have machine ID %s", ma)
	}
	// Disks are separate.
	read(a, "sh", "-c", "echo a > /etc/edgeadm-only-a")
	if _, err := b.ReadFile("/etc/edgeadm-only-a"); err == nil {
		t.Errorf("a file written in edge-a shows in edge-b")
	}
	// Cgroups are separate: a unit started in a is nowhere in b's tree.
	read(a, "systemd-run", "--unit=edgeadm-only-a", "--", "sleep", "300")
	if out := read(b, "sh", "-c", "find /sys/fs/cgroup -name 'edgeadm-only-a*' | head -1"); out != "" {
		t.Errorf("edge-b sees edge-a's unit cgroup %s", out)
	}
	if out, _, _ := b.Exec(ctx, "systemctl", "is-active", "edgeadm-only-a.service"); strings.TrimSpace(out) == "active" {
		t.Errorf("edge-b knows edge-a's unit")
	}
	// Links are separate: cutting a's leaves b connected.
	if err := a.Link().Cut(ctx); err != nil {
		t.Fatal(err)
	}
	if err := dialFromHost(ctx, b, addr); err != nil {
		t.Errorf("cutting edge-a's link cut edge-b too: %v", err)
	}
	if err := dialFromHost(ctx, a, addr); err == nil {
		t.Errorf("edge-a still reaches the cloud with its link cut")
	}
	// Stopping and tearing down a leaves b running.
	if err := a.Teardown(ctx); err != nil {
		t.Fatal(err)
	}
	if left := a.Leftovers(); len(left) > 0 {
		t.Errorf("edge-a's teardown left: %v", left)
	}
	if out, _, err := b.Exec(ctx, "systemctl", "is-system-running"); err != nil {
		t.Errorf("edge-b after edge-a's teardown: %q %v", out, err)
	}
	if out := read(b, "cat", "/proc/1/comm"); out != "systemd" {
		t.Errorf("edge-b's init after edge-a's teardown: %q", out)
	}
}

func TestEdgeHostDegradedLink(t *testing.T) {
	paths := edgePaths(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	n := newTestNetwork(t)
	h := newTestEdgeHost(t, n, paths, "edge1")
	addr := startCloudListener(t, n, 7780)

	err := h.Degrade(ctx, 100*time.Millisecond, 0)
	netem := err == nil
	switch {
	case netem:
		t.Logf("this kernel has netem: latency and loss use tc")
		if err := h.Heal(ctx); err != nil {
			t.Fatal(err)
		}
	case errors.Is(err, ErrNoNetem):
		t.Logf("latency: %v", err)
	default:
		t.Fatalf("degrade with latency: %v", err)
	}

	// Loss works with or without netem.
	if err := h.Degrade(ctx, 0, 100); err != nil {
		t.Fatalf("degrade with 100%% loss: %v", err)
	}
	if err := dialFromHost(ctx, h, addr); err == nil {
		t.Errorf("edge host reaches the cloud through a link with 100%% loss")
	}
	if err := h.Heal(ctx); err != nil {
		t.Fatal(err)
	}
	if err := Poll(ctx, 100*time.Millisecond, func(ctx context.Context) (bool, error) { return dialFromHost(ctx, h, addr) == nil, nil }); err != nil {
		t.Errorf("edge host does not reach the cloud after Heal: %v", err)
	}
	if netem {
		return
	}
	// The fallback drops about the share asked for: 400 UDP datagrams out and
	// their ICMP answers in, at 30%: 3 standard deviations is about +-5%.
	if err := h.Degrade(ctx, 0, 30); err != nil {
		t.Fatal(err)
	}
	udp := fmt.Sprintf("for i in $(seq 400); do echo x > /dev/udp/%s/9 || true; done", n.CloudIP)
	if _, _, err := h.Exec(ctx, "bash", "-c", udp); err != nil {
		t.Fatal(err)
	}
	seen, dropped, err := h.LossCounters(ctx)
	if err != nil {
		t.Fatal(err)
	}
	share := float64(dropped) / float64(seen)
	t.Logf("30%% loss by iptables: %d of %d packets dropped (%.1f%%)", dropped, seen, 100*share)
	if seen < 400 || share < 0.22 || share > 0.38 {
		t.Errorf("dropped %d of %d packets, want about 30%%", dropped, seen)
	}
	if err := h.Heal(ctx); err != nil {
		t.Fatal(err)
	}
	if _, _, err := h.LossCounters(ctx); err == nil {
		t.Errorf("the loss chain is still there after Heal")
	}
}

func TestEdgeHostTeardownLeavesNothing(t *testing.T) {
	paths := edgePaths(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	n, err := NewNetwork(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Teardown(context.Background()) })
	h, err := NewEdgeHost(ctx, n, paths, "edge1", EdgeHostOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Teardown(context.Background()) })
	// Something that makes cgroups and mounts inside.
	if _, _, err := h.Exec(ctx, "systemd-run", "--unit=edgeadm-busy", "-p", "PrivateTmp=yes", "--", "sleep", "600"); err != nil {
		t.Fatal(err)
	}
	nspawn, init := h.proc.PID(), h.InitPID()
	if err := h.Teardown(ctx); err != nil {
		t.Fatal(err)
	}
	if left := h.Leftovers(); len(left) > 0 {
		t.Errorf("edge host teardown left:\n  %s", strings.Join(left, "\n  "))
	}
	for _, pid := range []int{nspawn, init} {
		if procStartTime(pid) != "" {
			t.Errorf("process %d still runs", pid)
		}
	}
	if _, err := os.Stat(filepath.Join(paths.Rootfs, "bookworm", "etc", "machine-id")); err != nil {
		t.Errorf("the cached rootfs lost a file: %v", err)
	}
	if err := n.Teardown(ctx); err != nil {
		t.Fatal(err)
	}
	if left := networkLeftovers(ctx, n); len(left) > 0 {
		t.Errorf("network teardown left: %v", left)
	}
}

func TestEdgeHostShowsKubeletSysctlsWithoutTouchingTheKernel(t *testing.T) {
	paths := edgePaths(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	before := map[string]string{}
	for k := range kubeletSysctls {
		data, err := os.ReadFile("/proc/sys/" + k)
		if err != nil {
			t.Fatal(err)
		}
		before[k] = strings.TrimSpace(string(data))
	}
	n := newTestNetwork(t)
	h := newTestEdgeHost(t, n, paths, "edge1")
	for k, want := range kubeletSysctls {
		out, _, err := h.Exec(ctx, "cat", "/proc/sys/"+k)
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.TrimSpace(out); got != want {
			t.Errorf("inside the edge host %s = %s, want %s", k, got, want)
		}
		data, _ := os.ReadFile("/proc/sys/" + k)
		if got := strings.TrimSpace(string(data)); got != before[k] {
			t.Errorf("the build machine's %s changed from %s to %s", k, before[k], got)
		}
	}
	if _, _, err := h.Exec(ctx, "test", "-c", "/dev/kmsg"); err != nil {
		t.Errorf("no /dev/kmsg in the edge host: %v", err)
	}
}

// A killed systemd-nspawn leaves its machine running (measured); Start and
// Teardown must still end it.
func TestEdgeHostAfterNspawnIsKilled(t *testing.T) {
	paths := edgePaths(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	n := newTestNetwork(t)
	h := newTestEdgeHost(t, n, paths, "edge1")
	oldInit, oldStart := h.InitPID(), procStartTime(h.InitPID())
	if err := syscall.Kill(h.proc.PID(), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if err := h.proc.Wait(ctx); err == nil {
		t.Fatal("systemd-nspawn exited cleanly after SIGKILL")
	}
	if err := h.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if procStartTime(oldInit) == oldStart {
		t.Errorf("the orphaned init %d still runs after Start", oldInit)
	}
	if out, _, err := h.Exec(ctx, "hostname"); err != nil || strings.TrimSpace(out) != "edge1" {
		t.Errorf("after a crash and Start: hostname %q %v", out, err)
	}
}
