package installpkg

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/edgeadm/edgeadm/pkg/checksum"
)

// maxReported bounds how many file errors one verification lists.
const maxReported = 10

// verifyTree checks an unpacked package against its manifest: every listed file is there
// as a regular file with the listed size and mode (and, with rehash, sha256), and there
// is nothing else but directories and manifest.json. Errors name each file, up to
// maxReported of them.
func verifyTree(root string, m *Manifest, rehash bool) error {
	want := make(map[string]*File, len(m.Files))
	for i := range m.Files {
		want[m.Files[i].Path] = &m.Files[i]
	}
	var errs []error
	report := func(err error) {
		errs = append(errs, err)
	}
	seen := map[string]bool{}
	walkErr := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if rel == "." {
			return nil
		}
		if d.IsDir() {
			if want[rel] != nil {
				report(fmt.Errorf("%s is a directory but %s lists a file", rel, ManifestName))
			}
			return nil
		}
		st, err := d.Info()
		if err != nil {
			return err
		}
		if !st.Mode().IsRegular() {
			report(fmt.Errorf("%s is a %s; a package holds only files and directories", rel, fileKind(st.Mode())))
			return nil
		}
		if rel == ManifestName {
			return nil
		}
		f := want[rel]
		if f == nil {
			report(fmt.Errorf("%s is not listed in %s", rel, ManifestName))
			return nil
		}
		seen[rel] = true
		if st.Size() != f.Size {
			report(fmt.Errorf("%s is %d bytes but %s says %d", rel, st.Size(), ManifestName, f.Size))
			return nil
		}
		if perm := st.Mode().Perm(); perm != fs.FileMode(f.Mode) || st.Mode()&(fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky) != 0 {
			report(fmt.Errorf("%s has mode %04o but %s says %v", rel, uint32(st.Mode().Perm()), ManifestName, f.Mode))
			return nil
		}
		if rehash {
			sum, err := checksum.File(p)
			if err != nil {
				return err
			}
			if sum != f.SHA256 {
				report(fmt.Errorf("%s has sha256 %s but %s says %s", rel, sum, ManifestName, f.SHA256))
			}
		}
		return nil
	})
	if walkErr != nil {
		return fmt.Errorf("verifying the unpacked package: %w", walkErr)
	}
	for _, f := range m.Files {
		if !seen[f.Path] && want[f.Path] != nil {
			if _, err := os.Lstat(filepath.Join(root, filepath.FromSlash(f.Path))); errors.Is(err, fs.ErrNotExist) {
				report(fmt.Errorf("%s is listed in %s but missing", f.Path, ManifestName))
			}
		}
	}
	if len(errs) == 0 {
		return nil
	}
	n := len(errs)
	if n > maxReported {
		errs = append(errs[:maxReported], fmt.Errorf("... and %d more", n-maxReported))
	}
	return fmt.Errorf("%w (%d problems; the files changed after they were unpacked, or the package is damaged: fetch it again):\n%w",
		ErrManifest, n, errors.Join(errs...))
}
