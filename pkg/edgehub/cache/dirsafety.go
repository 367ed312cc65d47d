package cache

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"syscall"
)

// The cache holds what the node's clients read, Secrets included, so it
// lives in a directory only edgehub's user can enter. A directory that
// others can read or that another user owns is refused, not repaired:
// whatever was in it may already have been read or planted.

// prepareDir creates dir (0700) if missing and checks it is safe to use.
func prepareDir(dir string) error {
	st, err := os.Stat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("creating cache directory %s: %w", dir, err)
		}
		// MkdirAll's mode is filtered by the umask; make it exactly 0700.
		if err := os.Chmod(dir, 0o700); err != nil {
			return fmt.Errorf("setting mode 0700 on cache directory %s: %w", dir, err)
		}
		st, err = os.Stat(dir)
	}
	if err != nil {
		return fmt.Errorf("cache directory %s: %w", dir, err)
	}
	if !st.IsDir() {
		return fmt.Errorf("cache directory %s is not a directory: move it away or choose another cache directory", dir)
	}
	return checkPrivate(dir, st, "chmod 0700")
}

// checkFile checks an existing cache file is a private regular file.
func checkFile(path string) error {
	st, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("cache file %s: %w", path, err)
	}
	if !st.Mode().IsRegular() {
		return fmt.Errorf("cache file %s is not a regular file (%s): remove it, edgehub recreates it", path, st.Mode().Type())
	}
	return checkPrivate(path, st, "chmod 0600")
}

// checkPrivate refuses paths other users can access or that another user
// owns, naming the fix.
func checkPrivate(path string, st fs.FileInfo, chmodFix string) error {
	if sys, ok := st.Sys().(*syscall.Stat_t); ok {
		if uid := int(sys.Uid); uid != os.Geteuid() {
			return fmt.Errorf("cache path %s is owned by uid %d but edgehub runs as uid %d; it holds what this node's clients read: run `chown %d %s` if it is edgehub's, or choose another cache directory",
				path, uid, os.Geteuid(), os.Geteuid(), path)
		}
	}
	if perm := st.Mode().Perm(); perm&0o077 != 0 {
		return fmt.Errorf("cache path %s has mode %04o, open to other users; it holds what this node's clients read (Secrets included): run `%s %s`",
			path, perm, chmodFix, path)
	}
	return nil
}
