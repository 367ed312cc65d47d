package tunnel

import "path"

// Paths are where the tunnel's files live on a master. The defaults follow
// kubeadm's layout and Kubernetes' Konnectivity guide.
type Paths struct {
	// ManifestDir is the kubelet's static pod folder.
	ManifestDir string
	// EgressConfig is the EgressSelectorConfiguration the API server reads.
	EgressConfig string
	// UDSDir holds the proxy server's unix socket; both the API server and
	// the proxy server mount it.
	UDSDir string
	// BackupDir keeps the original manifest. It must be outside ManifestDir:
	// the kubelet would run every manifest in there, a backup included.
	BackupDir string
	// PKIDir holds the cluster CA (ca.crt, ca.key) that signs the proxy
	// server's client certificate.
	PKIDir string
	// ServerKubeconfig is the proxy server's kubeconfig. It holds a key:
	// 0600, in a folder of its own that is 0700 (not the socket folder,
	// which the API server mounts too).
	ServerKubeconfig string
}

// DefaultPaths are the paths on a kubeadm master.
func DefaultPaths() Paths {
	return Paths{
		ManifestDir:      "/etc/kubernetes/manifests",
		EgressConfig:     "/etc/kubernetes/edgeadm/egress-selector-configuration.yaml",
		UDSDir:           "/etc/kubernetes/konnectivity-server",
		BackupDir:        "/etc/kubernetes/edgeadm-backup",
		PKIDir:           "/etc/kubernetes/pki",
		ServerKubeconfig: "/etc/kubernetes/edgeadm-konnectivity/konnectivity-server.conf",
	}
}

// UDSName is the proxy server's socket.
func (p Paths) UDSName() string { return path.Join(p.UDSDir, "konnectivity-server.socket") }

// APIServerManifest is kube-apiserver's static pod manifest.
func (p Paths) APIServerManifest() string { return path.Join(p.ManifestDir, "kube-apiserver.yaml") }

// ServerManifest is the proxy server's static pod manifest.
func (p Paths) ServerManifest() string { return path.Join(p.ManifestDir, "konnectivity-server.yaml") }

// APIServerBackup is where the original kube-apiserver manifest is kept.
func (p Paths) APIServerBackup() string { return path.Join(p.BackupDir, "kube-apiserver.yaml") }

// Names of the flag and the volumes the change adds.
const (
	EgressFlag         = "egress-selector-config-file"
	EgressConfigVolume = "edgeadm-egress-selector-config"
	UDSVolume          = "konnectivity-uds"
)
