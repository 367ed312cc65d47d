package installpkg

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"syscall"
)

// Limits bound what an archive may be and unpack to.
type Limits struct {
	MaxArchive int64 // the compressed archive
	MaxFile    int64 // one file, unpacked
	MaxTotal   int64 // all files, unpacked
	MaxEntries int   // entries in the tar, directories included
}

// DefaultLimits leave room for several times today's package (about 120 MiB compressed,
// 400 MiB unpacked; the largest file, kubelet, about 100 MiB).
var DefaultLimits = Limits{MaxArchive: 2 << 30, MaxFile: 1 << 30, MaxTotal: 4 << 30, MaxEntries: 10000}

func (l Limits) withDefaults() Limits {
	d := DefaultLimits
	if l.MaxArchive > 0 {
		d.MaxArchive = l.MaxArchive
	}
	if l.MaxFile > 0 {
		d.MaxFile = l.MaxFile
	}
	if l.MaxTotal > 0 {
		d.MaxTotal = l.MaxTotal
	}
	if l.MaxEntries > 0 {
		d.MaxEntries = l.MaxEntries
	}
	return d
}

// maxTrailer bounds the zero padding a tar writer may leave after the end marker.
const maxTrailer = 1 << 20

// readError marks an error of reading the archive (as opposed to writing the tree), so
// it is reported as a damaged archive.
type readError struct{ err error }

func (e readError) Error() string { return e.err.Error() }
func (e readError) Unwrap() error { return e.err }

type archiveReader struct{ r io.Reader }

// tarError tags an error of reading a file's content from the tar stream, so that
// io.Copy's caller can tell it from an error of writing the file.
type tarError struct{ err error }

func (e tarError) Error() string { return e.err.Error() }

type tarSource struct{ r io.Reader }

func (t tarSource) Read(b []byte) (int, error) {
	n, err := t.r.Read(b)
	if err != nil && err != io.EOF {
		err = tarError{err}
	}
	return n, err
}

func (a archiveReader) Read(b []byte) (int, error) {
	n, err := a.r.Read(b)
	if err != nil && err != io.EOF {
		err = readError{err}
	}
	return n, err
}

// unpack reads the gzip-compressed tar r into dest, an empty directory, and returns its
// manifest. manifest.json must be the first entry: it is parsed and given to accept (the
// format, arch and host checks) before any other byte is written, and every entry after
// it is checked against it as it streams: an entry the manifest does not list, or whose
// size or mode differs, is refused before it is written, and a file whose sha256 differs
// fails right after. Refused outright: absolute paths, "..", links of any kind (format 1
// holds none; one that points outside the package is named as such), devices and fifos,
// setuid/setgid/sticky bits, group- or world-writable files, duplicates, and sizes over
// the limits. Directories are made 0755 whatever the archive says.
//
// On error dest holds whatever was written so far; the caller removes it.
func unpack(r io.Reader, dest string, lim Limits, accept func(*Manifest) error) (*Manifest, error) {
	gz, err := gzip.NewReader(archiveReader{r})
	if err != nil {
		return nil, corrupt(err)
	}
	root, err := os.OpenRoot(dest)
	if err != nil {
		return nil, err
	}
	defer root.Close()
	tr := tar.NewReader(gz)

	u := &unpacker{root: root, tr: tr, lim: lim, seen: map[string]bool{}}
	m, err := u.manifest()
	if err != nil {
		return nil, blameDamage(gz, lim, err)
	}
	if err := accept(m); err != nil {
		return nil, err
	}
	u.want = make(map[string]*File, len(m.Files))
	for i := range m.Files {
		u.want[m.Files[i].Path] = &m.Files[i]
	}
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, corrupt(err)
		}
		if err := u.entry(hdr); err != nil {
			return nil, blameDamage(gz, lim, err)
		}
	}
	if err := drain(gz); err != nil {
		return nil, err
	}
	for _, f := range m.Files {
		if !u.seen[f.Path] {
			return nil, fmt.Errorf("%w: %s is listed in %s but not in the archive; the package is incomplete: rebuild it with make install-pkg",
				ErrManifest, f.Path, ManifestName)
		}
	}
	return m, nil
}

type unpacker struct {
	root    *os.Root
	tr      *tar.Reader
	lim     Limits
	want    map[string]*File
	seen    map[string]bool // entries so far, files and directories
	entries int
	total   int64
	buf     []byte
}

// manifest reads the first entry, which must be manifest.json, and writes it out too.
func (u *unpacker) manifest() (*Manifest, error) {
	u.entries++
	m, data, err := readManifestEntry(u.tr)
	if err != nil {
		return nil, err
	}
	if err := u.root.WriteFile(ManifestName, data, 0o644); err != nil {
		return nil, fmt.Errorf("writing %s: %w", ManifestName, err)
	}
	u.seen[ManifestName] = true
	return m, nil
}

func isRegular(hdr *tar.Header) bool {
	//lint:ignore SA1019 old tar writers still use TypeRegA for files.
	return hdr.Typeflag == tar.TypeReg || hdr.Typeflag == tar.TypeRegA //nolint:staticcheck
}

func (u *unpacker) entry(hdr *tar.Header) error {
	u.entries++
	if u.entries > u.lim.MaxEntries {
		return fmt.Errorf("%w: more than %d entries", ErrTooLarge, u.lim.MaxEntries)
	}
	name := hdr.Name
	if hdr.Typeflag == tar.TypeDir && len(name) > 1 && name[len(name)-1] == '/' {
		name = name[:len(name)-1]
	}
	if err := checkName(name); err != nil {
		return fmt.Errorf("%w: entry %q: %v", ErrUnsafe, hdr.Name, err)
	}
	if u.seen[name] {
		return fmt.Errorf("%w: entry %s appears twice in the archive", ErrUnsafe, name)
	}
	u.seen[name] = true
	if special := hdr.Mode & 0o7000; special != 0 {
		return fmt.Errorf("%w: %s has setuid, setgid or sticky bits (mode %04o); no file of an install package needs them",
			ErrUnsafe, name, hdr.Mode&0o7777)
	}
	switch {
	case isRegular(hdr):
		return u.file(name, hdr)
	case hdr.Typeflag == tar.TypeDir:
		if u.want[name] != nil {
			return fmt.Errorf("%w: %s is a directory in the archive but a file in %s", ErrManifest, name, ManifestName)
		}
		return u.mkdirAll(name)
	case hdr.Typeflag == tar.TypeSymlink:
		if linkEscapes(path.Dir(name), hdr.Linkname) {
			return fmt.Errorf("%w: symlink %s -> %s points outside the package", ErrUnsafe, name, hdr.Linkname)
		}
		return fmt.Errorf("%w: symlink %s -> %s: an install package holds no links", ErrUnsafe, name, hdr.Linkname)
	case hdr.Typeflag == tar.TypeLink:
		// A hard link's target is a path from the archive's root.
		if linkEscapes(".", hdr.Linkname) {
			return fmt.Errorf("%w: hard link %s -> %s points outside the package", ErrUnsafe, name, hdr.Linkname)
		}
		return fmt.Errorf("%w: hard link %s -> %s: an install package holds no links", ErrUnsafe, name, hdr.Linkname)
	case hdr.Typeflag == tar.TypeChar:
		return fmt.Errorf("%w: %s is a character device; refused", ErrUnsafe, name)
	case hdr.Typeflag == tar.TypeBlock:
		return fmt.Errorf("%w: %s is a block device; refused", ErrUnsafe, name)
	case hdr.Typeflag == tar.TypeFifo:
		return fmt.Errorf("%w: %s is a fifo; refused", ErrUnsafe, name)
	}
	return fmt.Errorf("%w: %s has tar entry type %q, which an install package does not use", ErrUnsafe, name, hdr.Typeflag)
}

// linkEscapes reports whether target, seen from the directory dir of the archive,
// leaves the archive's root.
func linkEscapes(dir, target string) bool {
	if target == "" || path.IsAbs(target) {
		return true
	}
	p := path.Join(dir, target)
	return p == ".." || len(p) >= 3 && p[:3] == "../"
}

func (u *unpacker) file(name string, hdr *tar.Header) error {
	f := u.want[name]
	if f == nil {
		return fmt.Errorf("%w: %s is in the archive but not in %s; the package was altered or built wrongly: rebuild it with make install-pkg",
			ErrManifest, name, ManifestName)
	}
	perm := fs.FileMode(hdr.Mode & 0o777)
	if err := checkMode(perm); err != nil {
		return fmt.Errorf("%w: %s: %v", ErrUnsafe, name, err)
	}
	if hdr.Size > u.lim.MaxFile {
		return fmt.Errorf("%w: %s is %s, more than the limit of %s per file", ErrTooLarge, name, humanBytes(hdr.Size), humanBytes(u.lim.MaxFile))
	}
	if u.total+hdr.Size > u.lim.MaxTotal {
		return fmt.Errorf("%w: with %s the package unpacks to more than the limit of %s", ErrTooLarge, name, humanBytes(u.lim.MaxTotal))
	}
	u.total += hdr.Size
	if hdr.Size != f.Size {
		return fmt.Errorf("%w: %s is %d bytes but %s says %d; the package was altered: get a fresh copy",
			ErrManifest, name, hdr.Size, ManifestName, f.Size)
	}
	if perm != fs.FileMode(f.Mode) {
		return fmt.Errorf("%w: %s has mode %04o but %s says %v; the package was altered: get a fresh copy",
			ErrManifest, name, uint32(perm), ManifestName, f.Mode)
	}
	if err := u.mkdirAll(path.Dir(name)); err != nil {
		return err
	}
	out, err := u.root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("unpacking %s: %w", name, err)
	}
	defer out.Close()
	if u.buf == nil {
		u.buf = make([]byte, 1<<20)
	}
	h := sha256.New()
	if _, err := io.CopyBuffer(io.MultiWriter(out, h), tarSource{u.tr}, u.buf); err != nil {
		var te tarError
		if errors.As(err, &te) {
			return corrupt(te.err)
		}
		return fmt.Errorf("unpacking %s: %w", name, err)
	}
	if err := out.Chmod(perm); err != nil {
		return fmt.Errorf("unpacking %s: %w", name, err)
	}
	if err := out.Close(); err != nil {
		return fmt.Errorf("unpacking %s: %w", name, err)
	}
	if sum := hex.EncodeToString(h.Sum(nil)); sum != f.SHA256 {
		return fmt.Errorf("%w: %s has sha256 %s but %s says %s; the file was altered after the package was built: get a fresh copy",
			ErrManifest, name, sum, ManifestName, f.SHA256)
	}
	return nil
}

// mkdirAll makes dir and its parents 0755; a file in the way is an unsafe archive.
func (u *unpacker) mkdirAll(dir string) error {
	if dir == "." {
		return nil
	}
	if err := u.root.MkdirAll(dir, 0o755); err != nil {
		if errors.Is(err, syscall.ENOTDIR) || errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("%w: %s is both a file and a directory in the archive", ErrUnsafe, dir)
		}
		return fmt.Errorf("unpacking %s: %w", dir, err)
	}
	return nil
}

// blameDamage: a damaged archive can look like a bad manifest, an unlisted file or a
// wrong sha256 before the gzip checksum at its end shows the damage. When err is such a
// symptom, read on (bounded) and report the damage instead if there is any.
func blameDamage(gz *gzip.Reader, lim Limits, err error) error {
	if !errors.Is(err, ErrManifest) && !errors.Is(err, ErrUnsafe) && !errors.Is(err, ErrFormat) {
		return err
	}
	if _, cerr := io.Copy(io.Discard, io.LimitReader(gz, lim.MaxTotal)); cerr != nil {
		return corrupt(cerr)
	}
	return err
}

// drain reads the rest of the gzip stream, which checks its CRC and length: the tar
// reader stops at the end marker and would not notice damage after it. Only zero
// padding may follow the marker.
func drain(gz *gzip.Reader) error {
	buf := make([]byte, 32<<10)
	var n int64
	for {
		k, err := gz.Read(buf)
		if !bytes.Equal(buf[:k], make([]byte, k)) {
			return fmt.Errorf("%w: data after the end of the tar archive", ErrCorrupt)
		}
		n += int64(k)
		if n > maxTrailer {
			return fmt.Errorf("%w: more than %d bytes after the end of the tar archive", ErrCorrupt, maxTrailer)
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return corrupt(err)
		}
	}
}

// corrupt reports an error of reading the archive: damage (bad gzip or tar data, a
// checksum, a truncation) is ErrCorrupt; failing to read the file itself is not.
func corrupt(err error) error {
	var re readError
	if errors.As(err, &re) {
		return fmt.Errorf("reading the install package: %w", re.err)
	}
	return fmt.Errorf("%w: %v; the archive is damaged or truncated: fetch it again", ErrCorrupt, err)
}
