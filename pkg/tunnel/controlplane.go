package tunnel

import (
	"fmt"
	"strings"
)

// ControlPlane is what addon learned about how the API server runs.
type ControlPlane struct {
	// ServerVersion is the API server's git version (v1.37.1+k3s1, ...).
	ServerVersion string
	// Kubeadm: kube-system/kubeadm-config exists.
	Kubeadm bool
	// StaticPodManifest: a kube-apiserver static pod manifest is reachable
	// (addon runs on a master, or reaches every master's file system).
	StaticPodManifest bool
}

// UnsupportedError says that edgeadm cannot configure this control plane's
// egress, and what would work instead.
type UnsupportedError struct {
	Why, Instead string
}

func (e *UnsupportedError) Error() string {
	return fmt.Sprintf("the tunnel needs the API server's --%s, and %s; %s; or run addon with --tunnel=false (kubectl logs, exec and port-forward to edge nodes behind NAT will then not work)",
		EgressFlag, e.Why, e.Instead)
}

// CheckControlPlane refuses, before anything is deployed, a control plane
// whose API server edgeadm cannot reconfigure: a half-working tunnel (agents
// and server without the egress flag) would only hide the failure.
func CheckControlPlane(cp ControlPlane) error {
	v := strings.ToLower(cp.ServerVersion)
	manual := fmt.Sprintf("set --%s yourself with a \"cluster\" selection over GRPC to the proxy server's socket (docs/tunnel.md shows the file)", EgressFlag)
	switch {
	case strings.Contains(v, "+k3s"), strings.Contains(v, "+rke2"):
		return &UnsupportedError{Why: "k3s and RKE2 run their API server inside their own process, not from a manifest edgeadm can edit",
			Instead: "use their own tunnel (k3s: --egress-selector-mode=agent or cluster on the servers)"}
	case strings.Contains(v, "-eks-"), strings.Contains(v, "-gke."), strings.Contains(v, "aks"):
		return &UnsupportedError{Why: "a managed control plane does not let anyone change its API server's flags",
			Instead: "connect edge nodes to the cloud network with an L3 VPN (WireGuard, IPsec) so the API server can dial their kubelets"}
	case !cp.Kubeadm:
		return &UnsupportedError{Why: "this control plane was not built by kubeadm (no kube-system/kubeadm-config), so edgeadm does not know where its API server's flags live",
			Instead: manual}
	case !cp.StaticPodManifest:
		return &UnsupportedError{Why: "no kube-apiserver static pod manifest is reachable from here",
			Instead: "run addon on a kubeadm master (as root), or " + manual}
	}
	return nil
}
