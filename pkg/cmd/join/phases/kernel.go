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
	kernelModules = []string{"overlay", "br_netfilter"}
	kernelParams  = []struct{ key, value string }{
		{"net.bridge.bridge-nf-call-iptables", "1"},
		{"net.bridge.bridge-nf-call-ip6tables", "1"},
		{"net.ipv4.ip_forward", "1"},
	}
)

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
			if err := h.WriteFile(path.Join(p.ModulesLoadDir, modulesFile), []byte(fileHeader+strings.Join(kernelModules, "\n")+"\n"), host.Public); err != nil {
				return err
			}
			for _, m := range kernelModules {
				if err := h.LoadModule(ctx, m); err != nil {
					return fmt.Errorf("load kernel module %s: %w", m, err)
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
			fmt.Fprintf(d.Out(), "[kernel] Modules %s loaded; %s set\n", strings.Join(kernelModules, ", "), strings.Join(set, ", "))
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
