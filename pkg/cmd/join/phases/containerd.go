package phases

import (
	"context"
	"fmt"
	"path"
	"time"

	"k8s.io/kubernetes/cmd/kubeadm/app/cmd/phases/workflow"

	"github.com/edgeadm/edgeadm/pkg/host"
)

// runtimeDirs are where containerd, the kubelet and CNI plugins keep what
// they make. The journal notes what is in each before containerd first
// starts, so that reset removes exactly what appeared afterwards.
func runtimeDirs(p host.Paths) []string {
	return []string{
		p.ContainerdStateDir, p.ContainerdRunDir,
		p.CNIStateDir, p.CNIConfDir, p.CNIBinDir, "/run/netns", "/run/flannel",
		// containerd's directory for its plugins' binaries and libraries.
		"/opt/containerd",
	}
}

// kubeletDirs are where the kubelet keeps what it makes. They are noted
// just before the kubelet starts, after join wrote its own files there, so
// that a reset removes the kubelet's files before join's own, and the
// directories join made are empty when their turn comes.
func kubeletDirs(p host.Paths) []string {
	// /usr/libexec/kubernetes: the kubelet makes its FlexVolume plugin
	// directory (volumePluginDir) there.
	return []string{p.KubeletDir, p.KubernetesDir, p.PodLogDir, p.ContainerLogDir, "/usr/libexec/kubernetes"}
}

// podsResidue is the kubelet's pods, removed (with the kubelet stopped
// first) when a rollback reaches the point where it is recorded.
func podsResidue(p host.Paths) host.Residue {
	return host.Residue{Kind: host.ResiduePods, Path: path.Join(p.BinDir, "crictl"), Endpoint: CRIEndpoint(p), StopUnit: "kubelet.service"}
}

// CRIEndpoint is containerd's CRI socket as the kubelet and crictl name it.
func CRIEndpoint(p host.Paths) string { return "unix://" + p.ContainerdSocket }

// NewContainerdPhase starts containerd, after noting for reset what it and
// the kubelet will create.
func NewContainerdPhase() workflow.Phase {
	return workflow.Phase{
		Name:         "containerd",
		Short:        "Enable and start containerd",
		InheritFlags: Flags,
		RunIf:        notJoined,
		Run: func(c workflow.RunData) error {
			d := c.(Data)
			h, p, ctx := d.Host(), d.Paths(), d.Context()
			for _, dir := range runtimeDirs(p) {
				if err := h.Residue(ctx, host.Residue{Kind: host.ResidueDir, Path: dir}); err != nil {
					return err
				}
			}
			for _, k := range []host.ResidueKind{host.ResidueIptables, host.ResidueLinks} {
				if err := h.Residue(ctx, host.Residue{Kind: k}); err != nil {
					return err
				}
			}
			if err := h.Systemctl(ctx, host.Enable, "containerd.service"); err != nil {
				return err
			}
			if err := h.Systemctl(ctx, host.Start, "containerd.service"); err != nil {
				return fmt.Errorf("%w (see: journalctl -u containerd)", err)
			}
			// Recorded after the start, so that a rollback removes the pods
			// while containerd still runs, and stops containerd after.
			if err := h.Residue(ctx, podsResidue(p)); err != nil {
				return err
			}
			if d.DryRun() {
				return nil
			}
			if err := waitFor(ctx, d.Env().PollInterval, 60*time.Second, func() (bool, error) {
				_, err := h.Lstat(p.ContainerdSocket)
				return err == nil, nil
			}); err != nil {
				return fmt.Errorf("containerd did not open %s within a minute (see: journalctl -u containerd): %w", p.ContainerdSocket, err)
			}
			fmt.Fprintln(d.Out(), "[containerd] containerd is running")
			return nil
		},
	}
}

// waitFor polls cond until it holds, fails, or timeout passes. It is for
// waits on the host, where there is nothing to watch; waits on the cluster
// use watches.
func waitFor(ctx context.Context, interval, timeout time.Duration, cond func() (bool, error)) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		ok, err := cond()
		if err != nil || ok {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("gave up after %s", timeout)
		case <-t.C:
		}
	}
}
