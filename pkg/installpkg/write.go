package installpkg

import (
	"archive/tar"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/edgeadm/edgeadm/pkg/checksum"
)

// BuildInput is what WriteArchive packs.
type BuildInput struct {
	// Dir is the staged package tree (without manifest.json, which is generated).
	Dir               string
	KubernetesVersion string
	Arch              string
	Versions          map[string]string
	// Images are image tarballs in Dir (slash paths) and their references.
	Images []Image
	// ModTime is every entry's mtime; zero means the Unix epoch.
	ModTime time.Time
}

// WriteArchive packs in.Dir into w as a package of FormatVersion and returns its
// manifest. The output depends only on the files' contents, the executable bit and the
// fields of in (with the same Go release, whose gzip it uses): manifest.json first, then
// directories and files sorted by path; owner root, fixed mtime; modes 0755 for
// executables and directories, 0644 for the rest. Only regular files and directories
// may be staged.
func WriteArchive(w io.Writer, in BuildInput) (*Manifest, error) {
	files, dirs, err := stage(in.Dir)
	if err != nil {
		return nil, err
	}
	m := &Manifest{
		FormatVersion: FormatVersion, KubernetesVersion: in.KubernetesVersion, Arch: in.Arch,
		Versions: in.Versions, Images: in.Images, Files: files,
	}
	if err := m.Validate(); err != nil {
		return nil, fmt.Errorf("staged package %s: %w", in.Dir, err)
	}
	mdata, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, err
	}
	mdata = append(mdata, '\n')

	mtime := in.ModTime
	if mtime.IsZero() {
		mtime = time.Unix(0, 0)
	}
	// Header: no name, no mtime, OS "unknown": nothing of the build machine leaks in.
	gz, err := gzip.NewWriterLevel(w, gzip.BestCompression)
	if err != nil {
		return nil, err
	}
	tw := tar.NewWriter(gz)
	hdr := func(name string, typ byte, mode int64, size int64) *tar.Header {
		return &tar.Header{
			Typeflag: typ, Name: name, Mode: mode, Size: size, ModTime: mtime.UTC().Truncate(time.Second),
			Uname: "root", Gname: "root", Format: tar.FormatUSTAR,
		}
	}
	if err := tw.WriteHeader(hdr(ManifestName, tar.TypeReg, 0o644, int64(len(mdata)))); err != nil {
		return nil, err
	}
	if _, err := tw.Write(mdata); err != nil {
		return nil, err
	}
	type entry struct {
		name string
		file *File
	}
	var entries []entry
	for _, d := range dirs {
		entries = append(entries, entry{name: d + "/"})
	}
	for i := range m.Files {
		entries = append(entries, entry{name: m.Files[i].Path, file: &m.Files[i]})
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].name < entries[j].name })
	for _, e := range entries {
		if e.file == nil {
			if err := tw.WriteHeader(hdr(e.name, tar.TypeDir, 0o755, 0)); err != nil {
				return nil, fmt.Errorf("packing %s: %w", e.name, err)
			}
			continue
		}
		if err := tw.WriteHeader(hdr(e.name, tar.TypeReg, int64(e.file.Mode), e.file.Size)); err != nil {
			return nil, fmt.Errorf("packing %s: %w", e.name, err)
		}
		if err := copyFile(tw, filepath.Join(in.Dir, filepath.FromSlash(e.name)), e.file); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	if err := gz.Close(); err != nil {
		return nil, err
	}
	return m, nil
}

// copyFile writes the file into the archive and checks it did not change since stage
// hashed it.
func copyFile(w io.Writer, p string, f *File) error {
	src, err := os.Open(p)
	if err != nil {
		return err
	}
	defer src.Close()
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(w, h), io.LimitReader(src, f.Size+1))
	if err != nil {
		return fmt.Errorf("packing %s: %w", f.Path, err)
	}
	if n != f.Size || hex.EncodeToString(h.Sum(nil)) != f.SHA256 {
		return fmt.Errorf("packing %s: the file changed while the package was built", f.Path)
	}
	return nil
}

// stage lists the staged tree: files with their sha256, size and normalised mode, and
// the directories, both sorted.
func stage(dir string) ([]File, []string, error) {
	var files []File
	var dirs []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if rel == "." {
			return nil
		}
		if err := checkName(rel); err != nil {
			return fmt.Errorf("staged %s: %v", rel, err)
		}
		if rel == ManifestName {
			return fmt.Errorf("staged %s: manifest.json is generated; do not stage one", rel)
		}
		st, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case st.IsDir():
			dirs = append(dirs, rel)
			return nil
		case !st.Mode().IsRegular():
			return fmt.Errorf("staged %s is a %s; a package holds only files and directories", rel, fileKind(st.Mode()))
		}
		mode := FileMode(0o644)
		if st.Mode()&0o100 != 0 {
			mode = 0o755
		}
		sum, err := checksum.File(p)
		if err != nil {
			return err
		}
		files = append(files, File{Path: rel, SHA256: sum, Mode: mode, Size: st.Size()})
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	sort.Slice(files, func(i, j int) bool { return files[i].Path < files[j].Path })
	sort.Strings(dirs)
	return files, dirs, nil
}

// PackageName is the file name of a package: kube-linux-<arch>-<k8s version>.tar.gz.
func PackageName(arch, kubernetesVersion string) string {
	return fmt.Sprintf("kube-linux-%s-v%s.tar.gz", arch, strings.TrimPrefix(kubernetesVersion, "v"))
}
