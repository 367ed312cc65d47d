package phases

import (
	"fmt"
	"io/fs"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"

	"k8s.io/kubernetes/cmd/kubeadm/app/cmd/phases/workflow"

	"github.com/edgeadm/edgeadm/pkg/host"
	"github.com/edgeadm/edgeadm/pkg/installpkg"
)

// FileInstall is one file of the package and where it goes.
type FileInstall struct {
	Src    string // in the unpacked package
	Dst    string // host path
	Mode   fs.FileMode
	SHA256 string
}

// Plan is what the install phase does: directories to make, then files to
// copy (each checked against the manifest's sha256 while it is copied).
type Plan struct {
	Dirs  []string
	Files []FileInstall
	// Units are the systemd unit files among Files, by name.
	Units []string
}

// InstallPlan maps a verified package onto the host:
//
//	bin/<name>                    -> <BinDir>/<name>            (/usr/local/bin)
//	cni/bin/<name>                -> <CNIBinDir>/<name>         (/opt/cni/bin)
//	systemd/<unit>                -> <UnitDir>/<unit>           (/etc/systemd/system)
//	systemd/<unit>.d/<drop-in>    -> <UnitDir>/<unit>.d/<drop-in>
//	config/containerd.toml        -> <ContainerdConfigDir>/config.toml
//
// Image tarballs are imported into containerd, not copied; anything else in
// the package (documentation) stays in it. It is a pure function: the plan is
// what tests check.
func InstallPlan(pkg *installpkg.Package, p host.Paths) (Plan, error) {
	var plan Plan
	dir := func(d string) {
		if !slices.Contains(plan.Dirs, d) {
			plan.Dirs = append(plan.Dirs, d)
		}
	}
	dir(p.BinDir)
	dir(p.CNIBinDir)
	dir(p.CNIConfDir)
	dir(p.UnitDir)
	dir(p.ContainerdConfigDir)
	for _, f := range pkg.Manifest.Files {
		var dst string
		switch parts := strings.Split(f.Path, "/"); {
		case len(parts) == 2 && parts[0] == "bin":
			dst = path.Join(p.BinDir, parts[1])
		case len(parts) == 3 && parts[0] == "cni" && parts[1] == "bin":
			dst = path.Join(p.CNIBinDir, parts[2])
		case len(parts) == 2 && parts[0] == "systemd":
			dst = path.Join(p.UnitDir, parts[1])
			plan.Units = append(plan.Units, parts[1])
		case len(parts) == 3 && parts[0] == "systemd" && strings.HasSuffix(parts[1], ".d"):
			d := path.Join(p.UnitDir, parts[1])
			dir(d)
			dst = path.Join(d, parts[2])
		case f.Path == "config/containerd.toml":
			dst = path.Join(p.ContainerdConfigDir, "config.toml")
		default:
			continue
		}
		plan.Files = append(plan.Files, FileInstall{
			Src: path.Join(pkg.Root, f.Path), Dst: dst, Mode: fs.FileMode(f.Mode), SHA256: f.SHA256,
		})
	}
	for _, u := range []string{"containerd.service", "kubelet.service"} {
		if !slices.Contains(plan.Units, u) {
			return Plan{}, fmt.Errorf("the install package has no systemd/%s: rebuild it with make install-pkg", u)
		}
	}
	return plan, nil
}

// CheckUnits reads the package's unit files and drop-ins and checks that
// each program they start is one the plan installs (or the host has), and
// that the kubelet's drop-in reads the files join writes. A package whose
// units do not fit is refused before anything is installed.
func CheckUnits(plan Plan, p host.Paths, exists func(hostPath string) bool) error {
	installed := map[string]bool{}
	for _, f := range plan.Files {
		installed[f.Dst] = true
	}
	var kubeletUnits strings.Builder
	for _, f := range plan.Files {
		if !host.Within(f.Dst, p.UnitDir) {
			continue
		}
		data, err := os.ReadFile(f.Src)
		if err != nil {
			return err
		}
		if strings.HasPrefix(path.Base(path.Dir(f.Dst)), "kubelet.service") || path.Base(f.Dst) == "kubelet.service" {
			kubeletUnits.Write(data)
		}
		for _, line := range strings.Split(string(data), "\n") {
			v, ok := strings.CutPrefix(strings.TrimSpace(line), "ExecStart=")
			if !ok {
				continue
			}
			v = strings.TrimLeft(v, "-@+!:")
			fields := strings.Fields(v)
			if len(fields) == 0 || !strings.HasPrefix(fields[0], "/") {
				continue
			}
			if !installed[fields[0]] && !exists(fields[0]) {
				return fmt.Errorf("the install package's %s starts %s, which the package does not install (edgeadm puts bin/* in %s): rebuild the package with make install-pkg",
					path.Base(f.Dst), fields[0], p.BinDir)
			}
		}
	}
	for _, want := range []string{p.KubeletFlagsEnv, p.BootstrapKubeconfig, p.KubeletKubeconfig, p.KubeletConfig} {
		if !strings.Contains(kubeletUnits.String(), want) {
			return fmt.Errorf("the install package's kubelet unit does not use %s, which edgeadm join writes: rebuild the package with make install-pkg", want)
		}
	}
	return nil
}

// NewInstallPhase copies the package's programs, units and configuration.
func NewInstallPhase() workflow.Phase {
	return workflow.Phase{
		Name:         "install",
		Short:        "Install the container runtime, kubelet, CNI plugins and their systemd units from the package",
		InheritFlags: Flags,
		RunIf:        notJoined,
		Run: func(c workflow.RunData) error {
			d := c.(Data)
			pkg, err := d.Package()
			if err != nil {
				return err
			}
			plan, err := InstallPlan(pkg, d.Paths())
			if err != nil {
				return err
			}
			h := d.Host()
			for _, dir := range plan.Dirs {
				if err := h.MkdirAll(dir, 0o755); err != nil {
					return err
				}
			}
			for _, f := range plan.Files {
				if err := h.InstallFile(f.Dst, f.Src, host.File{Mode: f.Mode, SHA256: f.SHA256}); err != nil {
					return err
				}
			}
			fmt.Fprintf(d.Out(), "[install] Installed %d files of the %s package for Kubernetes %s\n", len(plan.Files), pkg.Manifest.Arch, pkg.Manifest.KubernetesVersion)
			if LacksCapSysResource(h) {
				dir := path.Join(d.Paths().ContainerdConfigDir, "conf.d")
				if err := h.MkdirAll(dir, 0o755); err != nil {
					return err
				}
				if err := h.WriteFile(path.Join(dir, containerdHostDropIn), []byte(restrictOOMScoreAdj), host.Public); err != nil {
					return err
				}
				fmt.Fprintf(d.Out(), "[install] This host lacks CAP_SYS_RESOURCE: containerd keeps containers' oom_score_adj at or above its own (%s)\n", path.Join(dir, containerdHostDropIn))
			}
			return h.Systemctl(d.Context(), host.DaemonReload, "")
		},
	}
}

// containerd's per-host drop-in (install-pkg/README.md): without
// CAP_SYS_RESOURCE containerd may not lower a container's oom_score_adj
// below its own, and every sandbox would fail.
const (
	containerdHostDropIn = "10-edgeadm-host.toml"
	restrictOOMScoreAdj  = fileHeaderTOML + "version = 3\n[plugins.'io.containerd.cri.v1.runtime']\n  restrict_oom_score_adj = true\n"
	fileHeaderTOML       = "# Written by edgeadm join for this host; edgeadm reset removes it.\n"
	capSysResource       = 24
)

// LacksCapSysResource says whether services on this host run without
// CAP_SYS_RESOURCE: it is missing from the bounding set of PID 1 (systemd),
// which every service inherits.
func LacksCapSysResource(r host.Reader) bool {
	data, err := r.ReadFile("/proc/1/status")
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "CapBnd:"); ok {
			bits, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			return err == nil && bits&(1<<capSysResource) == 0
		}
	}
	return false
}

// notJoined skips a phase when preflight found the join already done.
func notJoined(c workflow.RunData) (bool, error) { return !c.(Data).AlreadyJoined(), nil }
