package testenv

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
)

// The container runtime that InstallRuntime puts on an edge host. It is a
// harness shortcut for the foundation tests; `edgeadm join` installs the same
// parts from its install package instead.

// runtimeBinaries go to /usr/local/bin of the edge host.
var runtimeBinaries = []string{"containerd", "containerd-shim-runc-v2", "ctr", "runc", "crictl", "kubelet"}

// containerdConfig is containerd 2.4's config (version 4, as `containerd
// config default` writes it). The sandbox image is the cached pause image,
// which is never pulled: no registry is reachable.
// restrict_oom_score_adj: the edge host lacks CAP_SYS_RESOURCE, so containerd
// must not lower a sandbox's oom_score_adj below its own, or every sandbox
// fails. SystemdCgroup: systemd in the edge host owns its cgroup subtree
// (edgehost_cgroup.go), so runc asks it for the pods' cgroups, like on an
// edge box with systemd; the kubelet uses cgroupDriver systemd to match.
const containerdConfig = `version = 4

[plugins.'io.containerd.cri.v1.images']
  snapshotter = 'overlayfs'

  [plugins.'io.containerd.cri.v1.images'.pinned_images]
    sandbox = '%[1]s'

[plugins.'io.containerd.cri.v1.runtime']
  restrict_oom_score_adj = true

  [plugins.'io.containerd.cri.v1.runtime'.containerd]
    default_runtime_name = 'runc'

    [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
      runtime_type = 'io.containerd.runc.v2'

      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
        BinaryName = '/usr/local/bin/runc'
        SystemdCgroup = true

  [plugins.'io.containerd.cri.v1.runtime'.cni]
    bin_dirs = ['/opt/cni/bin']
    conf_dir = '/etc/cni/net.d'
`

// containerdUnit runs containerd under systemd in the edge host. No
// OOMScoreAdjust: lowering it needs CAP_SYS_RESOURCE, which the host lacks.
const containerdUnit = `[Unit]
Description=containerd container runtime (edgeadm test environment)
After=network.target local-fs.target

[Service]
ExecStart=/usr/local/bin/containerd
Type=notify
Delegate=yes
KillMode=process
Restart=always
RestartSec=1
LimitNPROC=infinity
LimitCORE=infinity
TasksMax=infinity

[Install]
WantedBy=multi-user.target
`

// cniConflist is the pods' network: a bridge on the edge host with
// host-local addresses, and portmap for hostPorts. containerd sets up each
// pod's loopback itself with the loopback plugin. Pods get routes to the test
// networks and the service CIDR only, never a default route: no pod packet
// may leave for an address the harness did not make.
const cniConflist = `{
  "cniVersion": "1.0.0",
  "name": "edgeadm-testenv",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "cni0",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "ranges": [[{"subnet": "%[1]s"}]],
        "routes": [{"dst": "198.18.0.0/15"}, {"dst": "%[2]s"}]
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
`

const crictlConfig = "runtime-endpoint: unix:///run/containerd/containerd.sock\nimage-endpoint: unix:///run/containerd/containerd.sock\ntimeout: 30\n"

// PodCIDR is the pod subnet InstallRuntime gives this host's bridge: the
// option, or 10.244.<last byte of the host's IP>.0/24, distinct per host of a network.
func (h *EdgeHost) PodCIDR() netip.Prefix {
	if h.opts.PodCIDR != "" {
		return netip.MustParsePrefix(h.opts.PodCIDR)
	}
	ip := h.link.IP.As4()
	return netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 244, ip[3], 0}), 24)
}

// PauseImage is the sandbox image's reference, from the cache's pause.tag.
func (p Paths) PauseImage() (string, error) {
	data, err := os.ReadFile(filepath.Join(p.Images, "pause.tag"))
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrNoCache, err)
	}
	return strings.TrimSpace(string(data)), nil
}

// InstallRuntime puts containerd, runc, crictl, the kubelet binary and the
// CNI plugins from the cache on the running host, configures and starts
// containerd as an enabled systemd unit, and imports the pause image into
// containerd's k8s.io namespace. The kubelet is installed but not configured.
func (h *EdgeHost) InstallRuntime(ctx context.Context) error {
	pause, err := h.paths.PauseImage()
	if err != nil {
		return err
	}
	for _, b := range runtimeBinaries {
		if err := h.CopyIn(h.paths.BinPath(b), "/usr/local/bin/"+b, 0o755); err != nil {
			return fmt.Errorf("install runtime: %w", err)
		}
	}
	plugins, err := os.ReadDir(h.paths.CNIBin)
	if err != nil {
		return fmt.Errorf("install runtime: %w: %v", ErrNoCache, err)
	}
	for _, p := range plugins {
		if err := h.CopyIn(filepath.Join(h.paths.CNIBin, p.Name()), "/opt/cni/bin/"+p.Name(), 0o755); err != nil {
			return fmt.Errorf("install runtime: %w", err)
		}
	}
	files := []struct {
		path, data string
		mode       os.FileMode
	}{
		{"/etc/containerd/config.toml", fmt.Sprintf(containerdConfig, pause), 0o644},
		{"/etc/systemd/system/containerd.service", containerdUnit, 0o644},
		{"/etc/cni/net.d/10-edgeadm-testenv.conflist", fmt.Sprintf(cniConflist, h.PodCIDR(), h.serviceCIDR()), 0o644},
		{"/etc/crictl.yaml", crictlConfig, 0o644},
	}
	for _, f := range files {
		if err := h.WriteFile(f.path, []byte(f.data), f.mode); err != nil {
			return fmt.Errorf("install runtime: %w", err)
		}
	}
	if err := h.CopyIn(filepath.Join(h.paths.Images, "pause.tar"), "/var/lib/edgeadm-testenv/pause.tar", 0o644); err != nil {
		return fmt.Errorf("install runtime: %w", err)
	}
	for _, argv := range [][]string{
		{"systemctl", "daemon-reload"},
		{"systemctl", "enable", "--now", "containerd.service"},
		{"ctr", "-n", "k8s.io", "images", "import", "/var/lib/edgeadm-testenv/pause.tar"},
	} {
		if _, _, err := h.Exec(ctx, argv...); err != nil {
			journal, _, _ := h.Exec(ctx, "journalctl", "-u", "containerd", "--no-pager", "-n", "30")
			return fmt.Errorf("install runtime: %w\ncontainerd journal:\n%s", err, journal)
		}
	}
	return nil
}

func (h *EdgeHost) serviceCIDR() string {
	if h.opts.ServiceCIDR != "" {
		return h.opts.ServiceCIDR
	}
	return "10.96.0.0/12"
}
