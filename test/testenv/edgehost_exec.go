package testenv

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"io/fs"
	"net/netip"
	"os"
	"os/exec"
	"path"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// edgeExecEnv is the whole environment of a command run in an edge host: the
// test's own environment (GOFLAGS, KUBECONFIG...) is not the machine's.
var edgeExecEnv = []string{
	"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
	"HOME=/root",
	"LANG=C.UTF-8",
	"TERM=dumb",
}

// Exec runs argv inside the running machine, in all of its namespaces and
// root (nsenter -t <init> -a), as root, and returns what it printed. A
// non-zero exit is an error that carries stderr.
func (h *EdgeHost) Exec(ctx context.Context, argv ...string) (stdout, stderr string, err error) {
	if len(argv) == 0 {
		return "", "", fmt.Errorf("exec in edge host %s: empty command", h.Name)
	}
	if h.init == 0 {
		return "", "", fmt.Errorf("exec %q in edge host %s: the machine is not running", argv, h.Name)
	}
	var out, errb bytes.Buffer
	cmd := exec.CommandContext(ctx, "nsenter", append([]string{"-t", strconv.Itoa(h.init), "-a", "--"}, argv...)...)
	cmd.Env = edgeExecEnv
	cmd.Stdout, cmd.Stderr = &out, &errb
	// nsenter forks to enter the PID namespace: when ctx ends, kill its whole
	// process group, not only nsenter.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	// A daemon the command leaves behind may hold its pipes: do not wait for it.
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Run(); err != nil {
		return out.String(), errb.String(), fmt.Errorf("exec %q in edge host %s: %w: %s", strings.Join(argv, " "), h.Name, err, strings.TrimSpace(errb.String()))
	}
	return out.String(), errb.String(), nil
}

// WriteFile writes data to name inside the machine with the given mode,
// making missing parent folders. It works whether or not the machine runs.
// Paths resolve inside the machine's root: a symlink that leads out of it is
// an error, never a write on the build machine.
func (h *EdgeHost) WriteFile(name string, data []byte, mode fs.FileMode) error {
	return h.writeFrom(name, bytes.NewReader(data), mode)
}

// CopyIn copies the build machine's file src to dst inside the machine.
func (h *EdgeHost) CopyIn(src, dst string, mode fs.FileMode) error {
	f, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("copy into edge host %s: %w", h.Name, err)
	}
	defer f.Close()
	return h.writeFrom(dst, f, mode)
}

// writeFrom writes to a temporary name and renames it over dst, so a binary
// that runs can be replaced and a reader never sees half a file.
func (h *EdgeHost) writeFrom(dst string, r io.Reader, mode fs.FileMode) error {
	dir, rel, err := h.hostPath(dst)
	if err != nil {
		return err
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return fmt.Errorf("edge host %s: %w", h.Name, err)
	}
	defer root.Close()
	if err := root.MkdirAll(path.Dir(rel), 0o755); err != nil {
		return fmt.Errorf("write %s in edge host %s: %w", dst, h.Name, err)
	}
	tmp := path.Join(path.Dir(rel), ".edgeadm-testenv-"+path.Base(rel))
	f, err := root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("write %s in edge host %s: %w", dst, h.Name, err)
	}
	_, err = io.Copy(f, r)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = root.Chmod(tmp, mode)
	}
	if err == nil {
		err = root.Rename(tmp, rel)
	}
	if err != nil {
		_ = root.Remove(tmp)
		return fmt.Errorf("write %s in edge host %s: %w", dst, h.Name, err)
	}
	return nil
}

// ReadFile reads name inside the machine (resolved as WriteFile does).
func (h *EdgeHost) ReadFile(name string) ([]byte, error) {
	dir, rel, err := h.hostPath(name)
	if err != nil {
		return nil, err
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("edge host %s: %w", h.Name, err)
	}
	defer root.Close()
	data, err := root.ReadFile(rel)
	if err != nil {
		return nil, fmt.Errorf("read %s in edge host %s: %w", name, h.Name, err)
	}
	return data, nil
}

// hostPath finds where the machine path name lives on the build machine: the
// folder that holds it (Root, or a state folder bind-mounted into the
// machine) and its path relative to that folder.
func (h *EdgeHost) hostPath(name string) (dir, rel string, err error) {
	if !path.IsAbs(name) {
		return "", "", fmt.Errorf("edge host %s: path %q is not absolute", h.Name, name)
	}
	clean := path.Clean(name)
	for _, m := range edgeStateMounts {
		if r, ok := strings.CutPrefix(clean, m+"/"); ok {
			return h.statePath(m), r, nil
		}
	}
	rel = strings.TrimPrefix(clean, "/")
	if rel == "" || slices.Contains(edgeStateMounts, clean) {
		return "", "", fmt.Errorf("edge host %s: cannot write %s itself", h.Name, clean)
	}
	return h.Root, rel, nil
}

// AddHosts adds a line "<ip> <names...>" to the machine's /etc/hosts, the way
// an operator points an edge box at the cluster's name.
func (h *EdgeHost) AddHosts(ip netip.Addr, names ...string) error {
	old, err := h.ReadFile("/etc/hosts")
	if err != nil {
		return err
	}
	line := ip.String() + "\t" + strings.Join(names, " ") + "\n"
	if bytes.Contains(old, []byte(line)) {
		return nil
	}
	if len(old) > 0 && old[len(old)-1] != '\n' {
		old = append(old, '\n')
	}
	return h.WriteFile("/etc/hosts", append(old, line...), 0o644)
}
