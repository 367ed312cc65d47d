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
	// BehindNAT puts the host on a private subnet behind its own NAT
	// (Network.AddNATEdge) instead of on the cloud bridge: it reaches the
	// cloud, the cloud cannot dial it. Link().Cut cuts the NAT's uplink.
	BehindNAT bool
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
	opts, rootfs, err := hostPrereqs(paths, name, opts)
	if err != nil {
		return nil, err
	}
	var link *Link
	if opts.BehindNAT {
		nat, err := n.AddNATEdge(ctx, name)
		if err != nil {
			return nil, err
		}
		link = nat.Link
	} else if link, err = n.AddEdge(ctx, name); err != nil {
		return nil, err
	}
	return bootHost(ctx, n, paths, name, link, opts, rootfs)
}

// hostPrereqs checks the name and what booting needs, and fills in the
// options' defaults; it returns the root filesystem to boot.
func hostPrereqs(paths Paths, name string, opts EdgeHostOptions) (EdgeHostOptions, string, error) {
	if !hostNameRE.MatchString(name) {
		return opts, "", fmt.Errorf("edge host name %q: want lower-case letters, digits and '-', at most 32", name)
	}
	if opts.Suite == "" {
		opts.Suite = "bookworm"
	}
	if opts.BootTimeout == 0 {
		opts.BootTimeout = 2 * time.Minute
	}
	rootfs := filepath.Join(paths.Rootfs, opts.Suite)
	if _, err := os.Stat(filepath.Join(rootfs, "usr/lib/systemd/systemd")); err != nil {
		return opts, "", fmt.Errorf("%w: no systemd in root filesystem %s", ErrNoCache, rootfs)
	}
	if _, err := exec.LookPath("systemd-nspawn"); err != nil {
		return opts, "", fmt.Errorf("edge hosts need systemd-nspawn (apt-get install systemd-container): %w", err)
	}
	return opts, rootfs, nil
}

// bootHost makes a host on link and boots it (NewEdgeHost, NewKubeadmCluster's master).
func bootHost(ctx context.Context, n *Network, paths Paths, name string, link *Link, opts EdgeHostOptions, rootfs string) (*EdgeHost, error) {
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
