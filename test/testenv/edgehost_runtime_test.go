package testenv

import (
	"context"
	"encoding/json"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// probePod is a CRI pod sandbox in its own network namespace (CNI) with a
// systemd slice as its cgroup parent, as the kubelet's systemd driver makes.
const probePod = `{
  "metadata": {"name": "probe", "namespace": "default", "uid": "edgeadm-probe", "attempt": 1},
  "hostname": "probe",
  "log_directory": "/var/log/pods/edgeadm-probe",
  "linux": {"cgroup_parent": "edgeadm-probe.slice", "security_context": {"namespace_options": {"network": 0}}}
}
`

func TestEdgeHostContainerdRunsThePauseImage(t *testing.T) {
	paths := edgePaths(t, runtimeBinaries...)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	n := newTestNetwork(t)
	h := newTestEdgeHost(t, n, paths, "edge1")
	start := time.Now()
	if err := h.InstallRuntime(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("runtime installed and containerd up in %s", time.Since(start).Round(time.Millisecond))
	pause, err := paths.PauseImage()
	if err != nil {
		t.Fatal(err)
	}
	exec := func(argv ...string) string {
		t.Helper()
		out, _, err := h.Exec(ctx, argv...)
		if err != nil {
			journal, _, _ := h.Exec(ctx, "journalctl", "-u", "containerd", "--no-pager", "-n", "40")
			t.Fatalf("%v\ncontainerd journal:\n%s", err, journal)
		}
		return strings.TrimSpace(out)
	}
	if out := exec("crictl", "images", "-q", pause); out == "" {
		t.Fatalf("the pause image %s is not in containerd's k8s.io namespace", pause)
	}

	// The CRI path the kubelet takes: a sandbox with a CNI network and
	// systemd-made cgroups.
	if err := h.WriteFile("/root/probe-pod.json", []byte(probePod), 0o644); err != nil {
		t.Fatal(err)
	}
	id := exec("crictl", "runp", "/root/probe-pod.json")
	var status struct {
		Status struct {
			State   string `json:"state"`
			Network struct {
				IP string `json:"ip"`
			} `json:"network"`
		} `json:"status"`
	}
	if err := json.Unmarshal([]byte(exec("crictl", "inspectp", "-o", "json", id)), &status); err != nil {
		t.Fatal(err)
	}
	if status.Status.State != "SANDBOX_READY" {
		t.Errorf("sandbox state %q, want SANDBOX_READY", status.Status.State)
	}
	if ip, err := netip.ParseAddr(status.Status.Network.IP); err != nil || !h.PodCIDR().Contains(ip) {
		t.Errorf("sandbox IP %q is not in the host's pod CIDR %s", status.Status.Network.IP, h.PodCIDR())
	}
	for _, cg := range h.cgroups {
		if cg.Key == "memory" {
			scope := filepath.Join(cg.Dir, "edgeadm.slice", "edgeadm-probe.slice", "cri-containerd-"+id+".scope")
			if _, err := os.Stat(scope); err != nil {
				t.Errorf("the sandbox's cgroup is not in the edge host's own tree: %v", err)
			}
		}
	}
	exec("crictl", "stopp", id)
	exec("crictl", "rmp", id)

	// Plain runc through ctr: its absolute cgroupfs path /k8s.io/<id> lands in
	// the edge host's own tree too.
	exec("ctr", "-n", "k8s.io", "run", "-d", pause, "edgeadm-ctr-probe")
	if out := exec("ctr", "-n", "k8s.io", "task", "ls"); !strings.Contains(out, "edgeadm-ctr-probe") || !strings.Contains(out, "RUNNING") {
		t.Errorf("ctr task ls:\n%s", out)
	}
	for _, cg := range h.cgroups {
		if cg.Key == "memory" {
			if _, err := os.Stat(filepath.Join(cg.Dir, "k8s.io", "edgeadm-ctr-probe")); err != nil {
				t.Errorf("ctr's container cgroup is not in the edge host's own tree: %v", err)
			}
			if _, err := os.Stat(filepath.Join(cg.Mount, "k8s.io", "edgeadm-ctr-probe")); err == nil {
				t.Errorf("ctr's container cgroup is at the top of the build machine's memory hierarchy")
			}
		}
	}
	exec("ctr", "-n", "k8s.io", "task", "kill", "-s", "SIGKILL", "edgeadm-ctr-probe")
	if err := Poll(ctx, 100*time.Millisecond, func(ctx context.Context) (bool, error) {
		out, _, err := h.Exec(ctx, "ctr", "-n", "k8s.io", "task", "ls")
		return err == nil && !strings.Contains(out, "RUNNING"), err
	}); err != nil {
		t.Errorf("the ctr task does not stop: %v", err)
	}
	exec("ctr", "-n", "k8s.io", "task", "rm", "edgeadm-ctr-probe")
	exec("ctr", "-n", "k8s.io", "containers", "rm", "edgeadm-ctr-probe")

	// containerd comes back by itself after a reboot (enabled unit).
	if err := h.Reboot(ctx); err != nil {
		t.Fatal(err)
	}
	if err := Poll(ctx, 100*time.Millisecond, func(ctx context.Context) (bool, error) {
		out, _, _ := h.Exec(ctx, "systemctl", "is-active", "containerd")
		return strings.TrimSpace(out) == "active", nil
	}); err != nil {
		t.Errorf("containerd is not active after a reboot: %v", err)
	}
}
