package host

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"
)

// ErrChecksum means the bytes to be written do not have the sum asked for.
var ErrChecksum = errors.New("sha256 mismatch")

// writeAtomic replaces abs with what r yields: a temporary file in the same
// directory is written, given its mode and owner, synced, and renamed over
// abs; then the directory is synced, so that after a crash abs holds either
// the old or the new content, never a mix. When abs is a bind-mount target
// (rename gives EBUSY, as for /etc/hosts inside some containers) the content
// is written in place instead, which is the only way to change such a file.
func writeAtomic(abs string, r io.Reader, f File) (err error) {
	dir := filepath.Dir(abs)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(abs)+".edgeadm-")
	if err != nil {
		return err
	}
	tmpName := tmp.Name()
	defer func() {
		if err != nil {
			_ = tmp.Close()
			_ = os.Remove(tmpName)
		}
	}()
	sum := sha256.New()
	if _, err = io.Copy(io.MultiWriter(tmp, sum), r); err != nil {
		return err
	}
	if f.SHA256 != "" {
		if got := hex.EncodeToString(sum.Sum(nil)); got != f.SHA256 {
			return fmt.Errorf("%w: want %s, got %s", ErrChecksum, f.SHA256, got)
		}
	}
	if err = tmp.Chmod(f.Mode.Perm()); err != nil {
		return err
	}
	if f.UID != os.Geteuid() || f.GID != os.Getegid() {
		if err = tmp.Chown(f.UID, f.GID); err != nil {
			return err
		}
	}
	if err = tmp.Sync(); err != nil {
		return err
	}
	if err = tmp.Close(); err != nil {
		return err
	}
	if err = os.Rename(tmpName, abs); err != nil {
		if !errors.Is(err, syscall.EBUSY) {
			return err
		}
		if err = writeInPlace(abs, tmpName); err != nil {
			return err
		}
		_ = os.Remove(tmpName)
	}
	return syncDir(dir)
}

// writeInPlace copies src over the content of dst, keeping dst's inode.
func writeInPlace(dst, src string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		_ = out.Close()
		return err
	}
	if err := out.Sync(); err != nil {
		_ = out.Close()
		return err
	}
	return out.Close()
}

// symlinkAtomic makes abs a symlink to target by renaming a fresh link over it.
func symlinkAtomic(target, abs string) error {
	dir := filepath.Dir(abs)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(abs)+".edgeadm-")
	if err != nil {
		return err
	}
	tmpName := tmp.Name()
	_ = tmp.Close()
	_ = os.Remove(tmpName)
	if err := os.Symlink(target, tmpName); err != nil {
		return err
	}
	if err := os.Rename(tmpName, abs); err != nil {
		_ = os.Remove(tmpName)
		return err
	}
	return syncDir(dir)
}

// syncDir makes a rename or removal in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, syscall.EINVAL) {
		return err
	}
	return nil
}
