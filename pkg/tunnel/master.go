package tunnel

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// Master changes the files of one kubeadm master. Root prefixes every path
// ("" or "/" on the master itself; a temporary folder in tests).
type Master struct {
	Root  string
	Paths Paths
}

func (m Master) path(p string) string { return filepath.Join(m.Root, p) }

// Configure gives this master's API server the egress configuration:
// the original manifest is kept in BackupDir (outside the manifests folder,
// where the kubelet would run it as a second API server), the egress file
// and the socket folder are written, then the manifest is replaced in one
// rename. It returns whether the manifest changed; a second run changes
// nothing. The kubelet restarts the API server when the manifest changes:
// waiting for it and rolling back is the caller's.
func (m Master) Configure() (changed bool, err error) {
	p := m.Paths
	manifestPath := m.path(p.APIServerManifest())
	manifest, mode, err := readFile(manifestPath)
	if errors.Is(err, fs.ErrNotExist) {
		return false, fmt.Errorf("%s does not exist: this host is not a kubeadm master (or its manifests live elsewhere); run addon on a kubeadm master, or with --tunnel=false", p.APIServerManifest())
	}
	if err != nil {
		return false, err
	}
	out, changed, err := ConfigureAPIServer(manifest, p)
	if err != nil {
		return false, err
	}
	egress, err := EgressSelectorConfiguration(p.UDSName())
	if err != nil {
		return false, err
	}
	configured, err := IsConfigured(manifest, p)
	if err != nil {
		return false, err
	}
	backupPath := m.path(p.APIServerBackup())
	backup, _, backupErr := readFile(backupPath)
	switch {
	case configured && backupErr != nil:
		// The flag is ours but the original is gone: restoring is impossible,
		// so changing more would only make it worse.
		return false, fmt.Errorf("%s already carries edgeadm's --%s but its backup %s cannot be read (%v): remove the flag and the %s and %s volumes by hand, then run addon again",
			p.APIServerManifest(), EgressFlag, p.APIServerBackup(), backupErr, EgressConfigVolume, UDSVolume)
	case !configured && (backupErr != nil || !bytes.Equal(backup, manifest)):
		// No backup, or one from an earlier run whose manifest was changed
		// since by someone else: the current manifest is what detach must
		// give back.
		if err := writeFileAtomic(backupPath, manifest, mode, 0o700); err != nil {
			return false, fmt.Errorf("back up %s: %w", p.APIServerManifest(), err)
		}
	}
	if err := writeIfDifferent(m.path(p.EgressConfig), egress, 0o644, 0o755); err != nil {
		return false, fmt.Errorf("write the egress configuration: %w", err)
	}
	if err := os.MkdirAll(m.path(p.UDSDir), 0o755); err != nil {
		return false, fmt.Errorf("create the proxy server's socket folder: %w", err)
	}
	if !changed {
		return false, nil
	}
	if err := writeFileAtomic(manifestPath, out, mode, 0o700); err != nil {
		return false, fmt.Errorf("write %s: %w", p.APIServerManifest(), err)
	}
	return true, nil
}

// Restore puts the backed-up manifest back, byte for byte and with its
// mode, then removes the egress file and the backup. Without a backup it
// does nothing if the manifest is not configured, and refuses if it is.
func (m Master) Restore() (changed bool, err error) {
	p := m.Paths
	backupPath := m.path(p.APIServerBackup())
	backup, mode, err := readFile(backupPath)
	if errors.Is(err, fs.ErrNotExist) {
		manifest, _, rerr := readFile(m.path(p.APIServerManifest()))
		if rerr == nil {
			if ok, _ := IsConfigured(manifest, p); ok {
				return false, fmt.Errorf("%s carries edgeadm's --%s but there is no backup at %s: remove the flag and the %s and %s volumes by hand",
					p.APIServerManifest(), EgressFlag, p.APIServerBackup(), EgressConfigVolume, UDSVolume)
			}
		}
		return false, removeIfExists(m.path(p.EgressConfig))
	}
	if err != nil {
		return false, err
	}
	manifestPath := m.path(p.APIServerManifest())
	current, _, err := readFile(manifestPath)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return false, err
	}
	if err != nil || !bytes.Equal(current, backup) {
		if err := writeFileAtomic(manifestPath, backup, mode, 0o700); err != nil {
			return false, fmt.Errorf("restore %s: %w", p.APIServerManifest(), err)
		}
		changed = true
	}
	// Only after the manifest is back: a restore killed before this point
	// runs again from the same backup.
	if err := removeIfExists(m.path(p.EgressConfig)); err != nil {
		return changed, err
	}
	if err := removeIfExists(backupPath); err != nil {
		return changed, err
	}
	for _, d := range []string{p.BackupDir, filepath.Dir(p.EgressConfig), p.UDSDir} {
		_ = os.Remove(m.path(d)) // only when empty
	}
	return changed, nil
}

func readFile(path string) ([]byte, fs.FileMode, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, 0, err
	}
	b, err := os.ReadFile(path)
	return b, fi.Mode().Perm(), err
}

func removeIfExists(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

func writeIfDifferent(path string, data []byte, mode, dirMode fs.FileMode) error {
	if cur, err := os.ReadFile(path); err == nil && bytes.Equal(cur, data) {
		return nil
	}
	return writeFileAtomic(path, data, mode, dirMode)
}

// writeFileAtomic writes data to path through a dot-file in the same folder
// and a rename: the kubelet ignores dot-files in its manifest folder, and
// sees either the old manifest or the new one, never half of one.
func writeFileAtomic(path string, data []byte, mode, dirMode fs.FileMode) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, dirMode); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".edgeadm-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // a no-op after the rename
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}

// Preflight checks, changing nothing, that Configure can edit manifest
// (this master's kube-apiserver manifest as read) and that a manifest
// already carrying the flag has its backup, so that a refusal comes before
// addon deploys anything.
func (m Master) Preflight(manifest []byte) error {
	p := m.Paths
	if _, _, err := ConfigureAPIServer(manifest, p); err != nil {
		return err
	}
	configured, err := IsConfigured(manifest, p)
	if err != nil {
		return err
	}
	if _, err := os.Stat(m.path(p.APIServerBackup())); configured && err != nil {
		return fmt.Errorf("%s already carries edgeadm's --%s but its backup %s cannot be read (%v): remove the flag and the %s and %s volumes by hand, then run addon again",
			p.APIServerManifest(), EgressFlag, p.APIServerBackup(), err, EgressConfigVolume, UDSVolume)
	}
	return nil
}
