package journal

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strings"

	"github.com/edgeadm/edgeadm/pkg/host"
)

// iptablesFamilies are the iptables front ends whose chains are tracked.
var iptablesFamilies = []struct{ name, save string }{
	{"iptables", "iptables-save"},
	{"ip6tables", "ip6tables-save"},
}

// cniLink says whether a network link is of the kind the kubelet's CNI
// plugins create: the bridge plugin's cni0 and its veth ends, flannel's
// VXLAN device, kube-proxy's IPVS dummy, calico's devices. Only such links
// that did not exist at join time are deleted.
func cniLink(name string) bool {
	for _, p := range []string{"cni", "flannel", "veth", "cali", "vxlan.calico", "kube-ipvs0", "kube-bridge", "nodelocaldns"} {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

// takeSnapshot notes what exists now of a residue's kind. What cannot be
// read is noted too, and its cleanup is then skipped: without knowing what
// was there before, nothing can be told apart from the user's own.
func takeSnapshot(ctx context.Context, h host.Reader, r host.Residue) *Snapshot {
	s := &Snapshot{}
	switch r.Kind {
	case host.ResidueDir:
		names, err := h.ReadDir(r.Path)
		switch {
		case errors.Is(err, fs.ErrNotExist):
		case err != nil:
			s.Unreadable = append(s.Unreadable, err.Error())
		default:
			s.Existed, s.Names = true, names
			if fi, err := h.Lstat(r.Path); err == nil {
				s.Mode, s.UID, s.GID = fi.Mode, fi.UID, fi.GID
			}
		}
	case host.ResidueIptables:
		s.Chains = map[string]map[string][]string{}
		for _, f := range iptablesFamilies {
			out, err := h.Output(ctx, host.Cmd(f.save))
			if err != nil {
				s.Unreadable = append(s.Unreadable, err.Error())
				continue
			}
			tables, err := parseIptablesSave(string(out))
			if err != nil {
				s.Unreadable = append(s.Unreadable, err.Error())
				continue
			}
			s.Chains[f.name] = chainsByTable(tables)
		}
	case host.ResidueLinks:
		links, err := listLinks(ctx, h)
		if err != nil {
			s.Unreadable = append(s.Unreadable, err.Error())
		} else {
			s.Links = links
		}
	}
	return s
}

// listLinks lists the names of the network links ("ip -o link show").
func listLinks(ctx context.Context, h host.Reader) ([]string, error) {
	out, err := h.Output(ctx, host.Cmd("ip", "-o", "link", "show"))
	if err != nil {
		return nil, err
	}
	var names []string
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		name := strings.TrimSuffix(f[1], ":")
		if i := strings.IndexByte(name, '@'); i >= 0 {
			name = name[:i]
		}
		names = append(names, name)
	}
	return names, nil
}

// undoResidue removes what appeared since the snapshot, through h.
func undoResidue(ctx context.Context, h host.Host, e Entry, note func(string)) error {
	r, s := e.Residue, e.Snapshot
	if s == nil {
		s = &Snapshot{}
	}
	switch r.Kind {
	case host.ResidueDir:
		if len(s.Unreadable) > 0 {
			note("skipped: " + r.Path + " could not be read when join ran")
			return nil
		}
		return cleanDir(h, r.Path, s)
	case host.ResidueIptables:
		return cleanChains(ctx, h, s, note)
	case host.ResidueLinks:
		if s.Links == nil {
			note("skipped: the links could not be listed when join ran")
			return nil
		}
		links, err := listLinks(ctx, h)
		if err != nil {
			return err
		}
		var errs []error
		for _, l := range links {
			if cniLink(l) && !slices.Contains(s.Links, l) {
				if _, err := h.Run(ctx, host.Cmd("ip", "link", "delete", l)); err != nil {
					errs = append(errs, err)
				}
			}
		}
		return errors.Join(errs...)
	case host.ResiduePods:
		return removePods(ctx, h, r, note)
	}
	return fmt.Errorf("unknown residue kind %q", r.Kind)
}

// cleanDir unmounts everything below dir, then removes dir (when it did not
// exist before) or the names in it that were not there.
func cleanDir(h host.Host, dir string, s *Snapshot) error {
	mounts, err := h.Mounts()
	if err != nil {
		return err
	}
	// Strictly below: dir itself may be a mount point the host had before
	// (a separate disk for /var/lib/kubelet), which stays.
	var below []string
	for _, m := range mounts {
		if m != dir && host.Within(m, dir) {
			below = append(below, m)
		}
	}
	// Deepest first, and the last mounted first among equals.
	slices.Reverse(below)
	slices.SortStableFunc(below, func(a, b string) int { return strings.Count(b, "/") - strings.Count(a, "/") })
	var errs []error
	for _, m := range below {
		if err := h.Unmount(m); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		// Removing files under a mount that is still there could reach into
		// whatever it shows (a hostPath volume): stop here.
		return fmt.Errorf("left %s in place: %w", dir, errors.Join(errs...))
	}
	if !s.Existed && !slices.Contains(mounts, dir) {
		return h.RemoveAll(dir)
	}
	names, err := h.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, n := range names {
		if !slices.Contains(s.Names, n) {
			if err := h.RemoveAll(path.Join(dir, n)); err != nil {
				errs = append(errs, err)
			}
		}
	}
	// containerd, for one, makes its root 0700 whatever it was.
	if fi, err := h.Lstat(dir); err == nil && s.Mode != 0 && (fi.Mode != s.Mode || fi.UID != s.UID || fi.GID != s.GID) {
		if err := h.SetMode(dir, host.File{Mode: s.Mode, UID: s.UID, GID: s.GID}); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func cleanChains(ctx context.Context, h host.Host, s *Snapshot, note func(string)) error {
	var errs []error
	for _, f := range iptablesFamilies {
		before, ok := s.Chains[f.name]
		if !ok {
			note("skipped " + f.name + ": its chains could not be listed when join ran")
			continue
		}
		out, err := h.Output(ctx, host.Cmd(f.save))
		if err != nil {
			errs = append(errs, err)
			continue
		}
		tables, err := parseIptablesSave(string(out))
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, args := range chainCleanup(tables, before) {
			if _, err := h.Run(ctx, host.Cmd(f.name, append([]string{"-w", "10"}, args...)...)); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// removePods removes every pod sandbox and container the kubelet made,
// while containerd still runs: first the kubelet is stopped (it would make
// them again), then crictl removes them. When that fails (a pod network that
// cannot be torn down), the pods' processes are stopped through their
// systemd slice and crictl tries once more.
func removePods(ctx context.Context, h host.Host, r *host.Residue, note func(string)) error {
	if r.StopUnit != "" {
		if s, err := h.UnitState(ctx, r.StopUnit); err == nil && s.IsActive() {
			if err := h.Systemctl(ctx, host.Stop, r.StopUnit); err != nil {
				return err
			}
		}
	}
	sock := strings.TrimPrefix(r.Endpoint, "unix://")
	if _, err := h.Lstat(sock); err != nil {
		note("skipped: containerd is not running (" + sock + " is missing)")
		return nil
	}
	if _, err := h.Lstat(r.Path); err != nil {
		note("skipped: " + r.Path + " is missing")
		return nil
	}
	rmp := host.Cmd(r.Path, "--runtime-endpoint", r.Endpoint, "--timeout", "60s", "rmp", "--all", "--force")
	_, err := h.Run(ctx, rmp)
	if err == nil {
		return nil
	}
	if s, serr := h.UnitState(ctx, podsSlice); serr == nil && s.IsActive() {
		if serr := h.Systemctl(ctx, host.Stop, podsSlice); serr == nil {
			if _, err2 := h.Run(ctx, rmp); err2 == nil {
				note("crictl could not remove every pod at first; stopping " + podsSlice + " let it")
				return nil
			}
		}
	}
	return err
}

// podsSlice holds every pod's processes under the kubelet's systemd cgroup
// driver.
const podsSlice = "kubepods.slice"
