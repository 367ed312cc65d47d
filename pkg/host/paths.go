package host

import (
	"fmt"
	"path"
	"path/filepath"
	"strings"
)

// Paths names every host path edgeadm reads or writes, as the running system
// sees it, and the Root under which an implementation finds them. Production
// uses Root "/" (DefaultPaths("/")); tests and dry runs may use a temporary
// directory.
type Paths struct {
	// Root is prefixed to every host path when a file is opened.
	Root string

	// edgeadm's own state.
	EdgeadmDir string // /var/lib/edgeadm, removed last by reset
	JournalDir string // /var/lib/edgeadm/journal (0700, entries 0600)
	BackupDir  string // /var/lib/edgeadm/backup (0700, backups 0600)

	Hosts string // /etc/hosts

	// Kubernetes node files.
	KubernetesDir       string // /etc/kubernetes
	PKIDir              string // /etc/kubernetes/pki
	CACert              string // /etc/kubernetes/pki/ca.crt
	BootstrapKubeconfig string // /etc/kubernetes/bootstrap-kubelet.conf
	KubeletKubeconfig   string // /etc/kubernetes/kubelet.conf, written by the kubelet
	KubeletDir          string // /var/lib/kubelet
	KubeletConfig       string // /var/lib/kubelet/config.yaml
	KubeletFlagsEnv     string // /var/lib/kubelet/kubeadm-flags.env

	// Where the install package's parts go.
	BinDir     string // /usr/local/bin
	UnitDir    string // /etc/systemd/system
	CNIBinDir  string // /opt/cni/bin
	CNIConfDir string // /etc/cni/net.d

	ContainerdConfigDir string // /etc/containerd
	ContainerdStateDir  string // /var/lib/containerd
	ContainerdRunDir    string // /run/containerd
	ContainerdSocket    string // /run/containerd/containerd.sock
	CNIStateDir         string // /var/lib/cni
	PodLogDir           string // /var/log/pods
	ContainerLogDir     string // /var/log/containers

	SysctlDir      string // /etc/sysctl.d
	ModulesLoadDir string // /etc/modules-load.d
}

// DefaultPaths is the standard layout under root ("/" in production).
func DefaultPaths(root string) Paths {
	if root == "" {
		root = "/"
	}
	return Paths{
		Root:                root,
		EdgeadmDir:          "/var/lib/edgeadm",
		JournalDir:          "/var/lib/edgeadm/journal",
		BackupDir:           "/var/lib/edgeadm/backup",
		Hosts:               "/etc/hosts",
		KubernetesDir:       "/etc/kubernetes",
		PKIDir:              "/etc/kubernetes/pki",
		CACert:              "/etc/kubernetes/pki/ca.crt",
		BootstrapKubeconfig: "/etc/kubernetes/bootstrap-kubelet.conf",
		KubeletKubeconfig:   "/etc/kubernetes/kubelet.conf",
		KubeletDir:          "/var/lib/kubelet",
		KubeletConfig:       "/var/lib/kubelet/config.yaml",
		KubeletFlagsEnv:     "/var/lib/kubelet/kubeadm-flags.env",
		BinDir:              "/usr/local/bin",
		UnitDir:             "/etc/systemd/system",
		CNIBinDir:           "/opt/cni/bin",
		CNIConfDir:          "/etc/cni/net.d",
		ContainerdConfigDir: "/etc/containerd",
		ContainerdStateDir:  "/var/lib/containerd",
		ContainerdRunDir:    "/run/containerd",
		ContainerdSocket:    "/run/containerd/containerd.sock",
		CNIStateDir:         "/var/lib/cni",
		PodLogDir:           "/var/log/pods",
		ContainerLogDir:     "/var/log/containers",
		SysctlDir:           "/etc/sysctl.d",
		ModulesLoadDir:      "/etc/modules-load.d",
	}
}

// Abs is where the host path p is on this machine: p under Root.
func (p Paths) Abs(hostPath string) string {
	if p.Root == "" || p.Root == "/" {
		return hostPath
	}
	return filepath.Join(p.Root, hostPath)
}

// Rel is the inverse of Abs: the host path of a machine path, and whether
// the machine path is under Root at all.
func (p Paths) Rel(machinePath string) (string, bool) {
	if p.Root == "" || p.Root == "/" {
		return machinePath, true
	}
	root := filepath.Clean(p.Root)
	if machinePath == root {
		return "/", true
	}
	if !strings.HasPrefix(machinePath, root+"/") {
		return "", false
	}
	return machinePath[len(root):], true
}

// CheckPath rejects a host path that is not absolute and clean: every host
// path edgeadm uses is one of its own constants, so anything else is a bug.
func CheckPath(p string) error {
	if !path.IsAbs(p) || path.Clean(p) != p {
		return fmt.Errorf("host path %q is not absolute and clean", p)
	}
	return nil
}

// Within says whether host path p is dir or below it.
func Within(p, dir string) bool {
	return p == dir || dir == "/" || strings.HasPrefix(p, dir+"/")
}
