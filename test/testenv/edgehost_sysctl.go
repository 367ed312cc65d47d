package testenv

import (
	"fmt"
	"os"
	"path"
	"sort"
	"strings"
)

// Kernel tunables and edge hosts.
//
// An edge host shares the build machine's kernel, and vm.overcommit_memory,
// kernel.panic and kernel.panic_on_oops are not namespaced. A kubelet that
// finds them different from what it wants sets them (or, with
// protectKernelDefaults, refuses to start): either would retune, or be
// stopped by, the build machine's kernel (here: panic_on_oops 0, panic 1,
// overcommit 0). nspawn mounts /proc/sys read-only anyway, so the kubelet would
// fail to start.
//
// So every edge host shows its processes the values the kubelet wants, the way
// a provisioned edge box has them: a unit early in boot bind-mounts a file
// holding each value over its /proc/sys entry, inside the machine's mount
// namespace only. The kernel's real values are never touched.

// kubeletSysctls are the tunables the kubelet 1.37 checks, with the values
// it wants (pkg/kubelet/cm setupKernelTunables).
var kubeletSysctls = map[string]string{
	"vm/overcommit_memory":      "1",
	"vm/panic_on_oom":           "0",
	"kernel/panic":              "10",
	"kernel/panic_on_oops":      "1",
	"kernel/keys/root_maxkeys":  "1000000",
	"kernel/keys/root_maxbytes": "25000000",
}

const (
	sysctlShimDir  = "/etc/edgeadm-testenv/sysctl"
	sysctlShimUnit = "edgeadm-testenv-sysctls.service"
)

// installSysctlShim writes the values and the unit that shows them, enabled.
func (h *EdgeHost) installSysctlShim() error {
	keys := make([]string, 0, len(kubeletSysctls))
	for k := range kubeletSysctls {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var unit strings.Builder
	unit.WriteString(`[Unit]
Description=Show the kernel tunables a kubelet wants, without changing the shared kernel (edgeadm test environment)
DefaultDependencies=no
After=systemd-sysctl.service
Before=sysinit.target

[Service]
Type=oneshot
RemainAfterExit=yes
`)
	for _, k := range keys {
		src := path.Join(sysctlShimDir, strings.ReplaceAll(k, "/", "."))
		if err := h.WriteFile(src, []byte(kubeletSysctls[k]+"\n"), 0o644); err != nil {
			return err
		}
		fmt.Fprintf(&unit, "ExecStart=/bin/mount --bind %s /proc/sys/%s\n", src, k)
	}
	unit.WriteString("\n[Install]\nWantedBy=sysinit.target\n")
	if err := h.WriteFile("/etc/systemd/system/"+sysctlShimUnit, []byte(unit.String()), 0o644); err != nil {
		return err
	}
	root, err := os.OpenRoot(h.Root)
	if err != nil {
		return err
	}
	defer root.Close()
	if err := root.MkdirAll("etc/systemd/system/sysinit.target.wants", 0o755); err != nil {
		return err
	}
	if err := root.Symlink("../"+sysctlShimUnit, "etc/systemd/system/sysinit.target.wants/"+sysctlShimUnit); err != nil && !os.IsExist(err) {
		return fmt.Errorf("enable %s in edge host %s: %w", sysctlShimUnit, h.Name, err)
	}
	return nil
}
