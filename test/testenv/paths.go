package testenv

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
)

// Paths says where the prebuilt parts of the test environment are. They come
// from scripts/test-env.sh, which builds them into .cache/test-env at the
// repository root unless EDGEADM_TEST_CACHE names another folder.
type Paths struct {
	Cache  string // the cache folder itself
	Bin    string // etcd, kube-*, kubelet, kubectl, containerd*, ctr, runc, crictl
	CNIBin string // CNI plugins
	Images string // OCI image tarballs (pause.tar, ...)
	Rootfs string // debootstrap root filesystems, one folder per suite
}

// ErrNoCache means the test environment has not been built.
var ErrNoCache = errors.New("test environment not built: run `make test-env` (scripts/test-env.sh)")

// LocatePaths finds the cache and checks that it has been built.
func LocatePaths() (Paths, error) {
	cache := os.Getenv("EDGEADM_TEST_CACHE")
	if cache == "" {
		root, err := repoRoot()
		if err != nil {
			return Paths{}, err
		}
		cache = filepath.Join(root, ".cache", "test-env")
	}
	p := Paths{
		Cache:  cache,
		Bin:    filepath.Join(cache, "bin"),
		CNIBin: filepath.Join(cache, "cni", "bin"),
		Images: filepath.Join(cache, "images"),
		Rootfs: filepath.Join(cache, "rootfs"),
	}
	if _, err := os.Stat(filepath.Join(p.Bin, "kube-apiserver")); err != nil {
		return p, fmt.Errorf("%w (looked in %s)", ErrNoCache, p.Bin)
	}
	return p, nil
}

// BinPath is the path of a cached binary.
func (p Paths) BinPath(name string) string { return filepath.Join(p.Bin, name) }

// repoRoot walks up from this source file to the folder holding go.mod.
func repoRoot() (string, error) {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "", errors.New("cannot locate the testenv source to find the repository root")
	}
	dir := filepath.Dir(file)
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above test/testenv: set EDGEADM_TEST_CACHE")
		}
		dir = parent
	}
}
