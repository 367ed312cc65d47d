package phases

import (
	"fmt"
	"path"
	"strings"

	"k8s.io/kubernetes/cmd/kubeadm/app/cmd/phases/workflow"

	"github.com/edgeadm/edgeadm/pkg/host"
)

// Kernel modules and parameters pods need: overlay for containerd's
// snapshots; br_netfilter and bridge-nf-call-* so that iptables sees traffic
// between pods on the CNI bridge (Services); ip_forward to route pod traffic.
var (
	kernelModules = []kernelModule{
		{"overlay", func(r host.Reader) bool {
			data, err := r.ReadFile("/proc/filesystems")
			return err == nil && strings.Contains(string(data), "\toverlay\n")
		}},
		{"br_netfilter", func(r host.Reader) bool {
			_, err := r.Lstat("/proc/sys/net/bridge/bridge-nf-call-iptables")
			return err == nil
		}},
	}
	kernelParams = []struct{ key, value string }{
		{"net.bridge.bridge-nf-call-iptables", "1"},
		{"net.bridge.bridge-nf-call-ip6tables", "1"},
		{"net.ipv4.ip_forward", "1"},
	}
)

// kernelModule is a module join needs, and how to tell that the kernel has
// what it provides even where the module does not show in /sys/module (built
// in without parameters) and cannot be probed (no /lib/modules, as in many
// VMs and containers).
type kernelModule struct {
	name    string
	present func(host.Reader) bool
}

// have says whether the kernel has the module's function now, and whether
// it is a loadable module (one that must be loaded again at boot).
func (m kernelModule) have(r host.Reader) (present, loadable bool) {
	loaded, _ := r.ModuleLoaded(m.name)
	_, err := r.Lstat("/sys/module/" + m.name + "/initstate") // only loadable modules have it
	return loaded || m.present(r), err == nil
}

const (
	modulesFile = "edgeadm.conf"
	sysctlFile  = "90-edgeadm.conf"
	fileHeader  = "# Written by edgeadm join; edgeadm reset removes it.\n"
)

// NewKernelPhase loads the kernel modules and sets the kernel parameters,
// now and at every boot.
func NewKernelPhase() workflow.Phase {
	return workflow.Phase{
		Name:         "kernel",
		Short:        "Load kernel modules (overlay, br_netfilter) and set sysctls (ip_forward, bridge-nf-call-iptables), now and at boot",
		InheritFlags: Flags,
		RunIf:        notJoined,
		Run: func(c workflow.RunData) error {
			d := c.(Data)
			h, p, ctx := d.Host(), d.Paths(), d.Context()
			for _, dir := range []string{p.ModulesLoadDir, p.SysctlDir} {
				if err := h.MkdirAll(dir, 0o755); err != nil {
					return err
				}
			}
			// Load what is missing; what is built in needs nothing, now or at boot.
			var atBoot []string
			for _, m := range kernelModules {
				present, loadable := m.have(h)
				if !present {
					if err := h.LoadModule(ctx, m.name); err != nil {
						return fmt.Errorf("load kernel module %s: %w", m.name, err)
					}
					loadable = true
				}
				if loadable {
					atBoot = append(atBoot, m.name)
				}
			}
			if len(atBoot) > 0 {
				if err := h.WriteFile(path.Join(p.ModulesLoadDir, modulesFile), []byte(fileHeader+strings.Join(atBoot, "\n")+"\n"), host.Public); err != nil {
					return err
				}
			}
			var conf strings.Builder
			conf.WriteString(fileHeader)
			var set []string
			for _, kp := range kernelParams {
				// The IPv6 bridge switch exists only with IPv6; without it
				// there is nothing to set.
				if _, err := h.ReadSysctl(kp.key); err != nil && kp.key == "net.bridge.bridge-nf-call-ip6tables" && !d.DryRun() {
					continue
				}
				fmt.Fprintf(&conf, "%s = %s\n", kp.key, kp.value)
				set = append(set, kp.key)
			}
			if err := h.WriteFile(path.Join(p.SysctlDir, sysctlFile), []byte(conf.String()), host.Public); err != nil {
				return err
			}
			for _, kp := range kernelParams {
				if !contains(set, kp.key) {
					continue
				}
				if err := h.WriteSysctl(kp.key, kp.value); err != nil {
					if d.DryRun() {
						continue
					}
					return fmt.Errorf("set %s: %w", kp.key, err)
				}
			}
			fmt.Fprintf(d.Out(), "[kernel] overlay and br_netfilter available; %s set\n", strings.Join(set, ", "))
			return nil
		},
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
