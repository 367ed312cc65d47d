package installpkg

import (
	"path/filepath"
	"strings"
)

// Paths inside a package of format 1 (install-pkg/README.md is the reference).
const (
	kubeletBin        = "bin/kubelet"
	kubectlBin        = "bin/kubectl"
	crictlBin         = "bin/crictl"
	containerdBin     = "bin/containerd"
	shimBin           = "bin/containerd-shim-runc-v2"
	ctrBin            = "bin/ctr"
	runcBin           = "bin/runc"
	cniBinDir         = "cni/bin"
	containerdUnit    = "systemd/containerd.service"
	kubeletUnit       = "systemd/kubelet.service"
	kubeletDropIn     = "systemd/kubelet.service.d/10-edgeadm.conf"
	containerdConfig  = "config/containerd.toml"
	pauseImage        = "images/pause.tar"
	edgehubBin        = "bin/edgehub"
	edgehubUnit       = "systemd/edgehub.service"
	executableDirBin  = "bin/"
	executableDirCNI  = "cni/bin/"
	cniPluginsPrefix  = cniBinDir + "/"
	requiredCNIBridge = cniPluginsPrefix + "bridge"
)

// required are the files every package of format 1 carries.
var required = []struct{ path, what string }{
	{kubeletBin, "kubelet"},
	{kubectlBin, "kubectl"},
	{crictlBin, "crictl"},
	{containerdBin, "containerd"},
	{shimBin, "containerd's runc shim"},
	{ctrBin, "ctr"},
	{runcBin, "runc"},
	{requiredCNIBridge, "CNI bridge plugin"},
	{cniPluginsPrefix + "host-local", "CNI host-local IPAM plugin"},
	{cniPluginsPrefix + "loopback", "CNI loopback plugin"},
	{cniPluginsPrefix + "portmap", "CNI portmap plugin"},
	{containerdUnit, "containerd's systemd unit"},
	{kubeletUnit, "kubelet's systemd unit"},
	{kubeletDropIn, "kubelet's systemd drop-in"},
	{containerdConfig, "containerd's configuration"},
	{pauseImage, "the pause (sandbox) image"},
}

// RequiredFiles lists the paths every package of this format must contain.
func RequiredFiles() []string {
	out := make([]string, len(required))
	for i, r := range required {
		out[i] = r.path
	}
	return out
}

func isExecutablePath(p string) bool {
	return strings.HasPrefix(p, executableDirBin) || strings.HasPrefix(p, executableDirCNI)
}

// Components are the absolute paths of a verified package's parts, for the join
// workflow to install from. Where each goes on the host is the workflow's business
// (install-pkg/README.md lists what the units expect).
type Components struct {
	Kubelet, Kubectl, Crictl              string
	Containerd, ContainerdShim, Ctr, Runc string
	// CNIBinDir holds the CNI plugins; CNIPlugins are their file names.
	CNIBinDir  string
	CNIPlugins []string
	// Units and drop-ins: containerd.service, kubelet.service, and the kubelet drop-in
	// installed as /etc/systemd/system/kubelet.service.d/10-edgeadm.conf.
	ContainerdUnit, KubeletUnit, KubeletDropIn string
	ContainerdConfig                           string
	// PauseImage is an image tarball (ctr -n k8s.io images import) tagged PauseImageRef.
	PauseImage, PauseImageRef string
	// Edgehub and EdgehubUnit are "" in a package without edgehub.
	Edgehub, EdgehubUnit string
	// Images are all image tarballs (pause included), by absolute path, with their references.
	Images []Image
}

func componentsOf(root string, m *Manifest) Components {
	abs := func(p string) string {
		if m.File(p) == nil {
			return ""
		}
		return filepath.Join(root, filepath.FromSlash(p))
	}
	c := Components{
		Kubelet: abs(kubeletBin), Kubectl: abs(kubectlBin), Crictl: abs(crictlBin),
		Containerd: abs(containerdBin), ContainerdShim: abs(shimBin), Ctr: abs(ctrBin), Runc: abs(runcBin),
		CNIBinDir:      filepath.Join(root, cniBinDir),
		ContainerdUnit: abs(containerdUnit), KubeletUnit: abs(kubeletUnit), KubeletDropIn: abs(kubeletDropIn),
		ContainerdConfig: abs(containerdConfig),
		PauseImage:       abs(pauseImage), PauseImageRef: m.image(pauseImage).Ref,
		Edgehub: abs(edgehubBin), EdgehubUnit: abs(edgehubUnit),
	}
	for _, f := range m.Files {
		if name, ok := strings.CutPrefix(f.Path, cniPluginsPrefix); ok && !strings.Contains(name, "/") {
			c.CNIPlugins = append(c.CNIPlugins, name)
		}
	}
	for _, im := range m.Images {
		c.Images = append(c.Images, Image{Path: abs(im.Path), Ref: im.Ref})
	}
	return c
}
