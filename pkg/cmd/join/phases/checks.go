package phases

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"path"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/edgeadm/edgeadm/pkg/host"
	"github.com/edgeadm/edgeadm/pkg/preflight"
)

func check(name string, f func(ctx context.Context) (warnings, errs []error)) preflight.Check {
	return preflight.Func{N: name, F: f}
}

func isPrivilegedUser(d Data) preflight.Check {
	return check("IsPrivilegedUser", func(context.Context) ([]error, []error) {
		if d.Env().Euid() != 0 {
			return nil, one(errorf("edgeadm join changes system files and services: run it as root (sudo edgeadm join ...)"))
		}
		return nil, nil
	})
}

func systemdCheck(d Data) preflight.Check {
	return check("Systemd", func(context.Context) ([]error, []error) {
		// sd_booted(3): systemd is the init system when this directory exists.
		if fi, err := d.Host().Lstat("/run/systemd/system"); err != nil || fi.Kind != host.KindDir {
			return nil, one(errorf("systemd is not the init system of this host (no /run/systemd/system): edgeadm runs containerd and the kubelet as systemd units, so the host must boot with systemd"))
		}
		return nil, nil
	})
}

// leftoverChecks find what an earlier join (ours, kubeadm's, by hand) left.
func leftoverChecks(d Data) []preflight.Check {
	p := d.Paths()
	var checks []preflight.Check
	for _, f := range []string{p.KubeletKubeconfig, p.BootstrapKubeconfig, p.CACert, p.KubeletConfig} {
		checks = append(checks, check("FileAvailable-"+strings.ReplaceAll(f, "/", "-"), func(context.Context) ([]error, []error) {
			if _, err := d.Host().Lstat(f); err == nil {
				return nil, one(errorf("%s already exists: this host was joined before; run \"edgeadm reset\" (or \"kubeadm reset\" if kubeadm joined it) first", f))
			}
			return nil, nil
		}))
	}
	checks = append(checks, check("KubeletNotRunning", func(ctx context.Context) ([]error, []error) {
		s, err := d.Host().UnitState(ctx, "kubelet.service")
		if err != nil {
			return one(errorf("cannot ask systemd about kubelet.service: %v", err)), nil
		}
		if s.IsActive() {
			return nil, one(errorf("a kubelet already runs on this host (kubelet.service is %s): run \"edgeadm reset\" (or \"kubeadm reset\") first", s.Active))
		}
		return nil, nil
	}))
	for _, dir := range []string{p.KubeletDir, p.ContainerdStateDir} {
		checks = append(checks, check("DirAvailable-"+strings.ReplaceAll(dir, "/", "-"), func(context.Context) ([]error, []error) {
			names, err := d.Host().ReadDir(dir)
			if err == nil && len(names) > 0 {
				return nil, one(errorf("%s is not empty: another kubelet or container runtime used this host; run \"edgeadm reset\" (or remove what is in it) first", dir))
			}
			return nil, nil
		}))
	}
	return checks
}

func portCheck(d Data, port int, who string) preflight.Check {
	return check("Port-"+strconv.Itoa(port), func(context.Context) ([]error, []error) {
		l, err := d.Env().Listen("tcp", ":"+strconv.Itoa(port))
		if err != nil {
			return nil, one(errorf("port %d is in use (%s needs it): stop what listens on it (ss -ltnp 'sport = :%d')", port, who, port))
		}
		_ = l.Close()
		return nil, nil
	})
}

func containerRuntimeCheck(d Data) preflight.Check {
	return check("ContainerRuntime", func(ctx context.Context) ([]error, []error) {
		p := d.Paths()
		if _, err := d.Host().Lstat(p.ContainerdSocket); err == nil {
			return nil, one(errorf("a container runtime already runs here (%s exists): edgeadm installs its own containerd; stop and remove the other one, or run \"edgeadm reset\" if an earlier join left it", p.ContainerdSocket))
		}
		if s, err := d.Host().UnitState(ctx, "containerd.service"); err == nil && s.IsActive() {
			return nil, one(errorf("containerd.service already runs: edgeadm installs its own containerd; stop and remove the other one first"))
		}
		return nil, nil
	})
}

func swapCheck(d Data) preflight.Check {
	return check("Swap", func(context.Context) ([]error, []error) {
		if swapOn(d.Host()) {
			return one(errorf("swap is on: the kubelet refuses to start unless the cluster's kubelet-config sets failSwapOn: false; turn it off with \"swapoff -a\" and remove it from /etc/fstab")), nil
		}
		return nil, nil
	})
}

// swapOn says whether /proc/swaps lists an active swap area.
func swapOn(r host.Reader) bool {
	data, err := r.ReadFile("/proc/swaps")
	if err != nil {
		return false
	}
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	return len(lines) > 1
}

// cgroupV1 says whether the host runs the legacy (v1 or hybrid) hierarchy.
func cgroupV1(r host.Reader) bool {
	_, err := r.Lstat("/sys/fs/cgroup/cgroup.controllers")
	return errors.Is(err, fs.ErrNotExist)
}

func kernelModuleCheck(d Data, m kernelModule) preflight.Check {
	return check("KernelModule-"+m.name, func(ctx context.Context) ([]error, []error) {
		if present, _ := m.have(d.Host()); present {
			return nil, nil
		}
		// modprobe -n resolves the module (or a built-in) without loading it.
		if _, err := d.Host().Output(ctx, host.Cmd("modprobe", "-n", "-q", m.name)); err != nil {
			return nil, one(errorf("the kernel lacks %s and it cannot be loaded (%v): install the kernel's modules package, or load it on the host that runs this one (a container)", m.name, err))
		}
		return nil, nil
	})
}

func sysctlCheck(d Data) preflight.Check {
	return check("Sysctls", func(context.Context) ([]error, []error) {
		if _, err := d.Host().ReadSysctl("net.ipv4.ip_forward"); err != nil {
			return nil, one(errorf("cannot read net.ipv4.ip_forward (%v): the kernel must have IPv4 forwarding", err))
		}
		return nil, nil
	})
}

func hostsFileCheck(d Data) preflight.Check {
	return check("HostsFile", func(context.Context) ([]error, []error) {
		t := d.Target()
		p := d.Paths().Hosts
		fi, err := d.Host().Lstat(p)
		if err == nil && fi.Kind != host.KindFile {
			if !t.IsIP {
				return nil, nil
			}
			return nil, one(errorf("%s is a %s: an IP join adds a line to it and edits only regular files; make it a regular file, or join by a domain name the API server's certificate carries", p, fi.Kind))
		}
		data, err := d.Host().ReadFile(p)
		if err != nil {
			return nil, nil // created if needed
		}
		if _, _, err := host.FindBlock(data, host.HostsMarker); err != nil {
			return nil, one(errorf("%s has a damaged edgeadm block (%v): fix or remove the lines between %q and %q by hand", p, err, host.HostsMarker.Begin, host.HostsMarker.End))
		}
		if !t.IsIP {
			return nil, nil
		}
		if ip := hostsEntryOutsideBlock(data, KubernetesDefault); ip != "" && ip != t.Host {
			return nil, one(errorf("%s already maps %s to %s, and that line would win over the %s edgeadm adds: remove it", p, KubernetesDefault, ip, t.Host))
		}
		return nil, nil
	})
}

// hostsEntryOutsideBlock finds the address a hosts file gives name, outside
// edgeadm's block ("" when none).
func hostsEntryOutsideBlock(data []byte, name string) string {
	b, found, _ := host.FindBlock(data, host.HostsMarker)
	if found {
		data = append(append([]byte{}, data[:b.Start]...), data[b.End:]...)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		f := strings.Fields(line)
		for _, n := range f[min(1, len(f)):] {
			if strings.EqualFold(n, name) {
				return f[0]
			}
		}
	}
	return ""
}

func nodeNameCheck(d Data) preflight.Check {
	return check("NodeName", func(context.Context) ([]error, []error) {
		if errs := validation.IsDNS1123Subdomain(d.NodeName()); len(errs) > 0 {
			return nil, one(errorf("node name %q is not valid (%s): pass --node-name", d.NodeName(), strings.Join(errs, "; ")))
		}
		return nil, nil
	})
}

func nodeIPCheck(d Data) preflight.Check {
	return check("NodeIP", func(context.Context) ([]error, []error) {
		ip, err := d.NodeIP()
		if err != nil {
			return nil, one(errorf("cannot tell this host's address towards the API server (%v): pass --node-ip", err))
		}
		a, err := netip.ParseAddr(ip)
		if err != nil || a.IsLoopback() || a.IsUnspecified() {
			return nil, one(errorf("node IP %q cannot be used by the kubelet (it must be a unicast address of this host, not loopback): pass --node-ip", ip))
		}
		return nil, nil
	})
}

// DetectNodeIP is the local address of the route to addr: a UDP "dial"
// chooses the route and source address without sending a packet.
func DetectNodeIP(ctx context.Context, env *Env, addr string) (string, error) {
	c, err := env.Dial(ctx, "udp", addr)
	if err != nil {
		return "", err
	}
	defer c.Close()
	ua, ok := c.LocalAddr().(*net.UDPAddr)
	if !ok {
		return "", fmt.Errorf("unexpected local address %v", c.LocalAddr())
	}
	return ua.IP.String(), nil
}

// unitPath is where a unit file is installed.
func unitPath(p host.Paths, name string) string { return path.Join(p.UnitDir, name) }
