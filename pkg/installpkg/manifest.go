package installpkg

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"regexp"
	"strconv"
	"strings"
)

// FormatVersion is the package format this edgeadm reads and writes. Bump it when a
// reader of the old format would install a new package wrongly.
const FormatVersion = 1

// ManifestName is manifest.json's path in the archive, where it is the first entry.
const ManifestName = "manifest.json"

// maxManifestSize bounds manifest.json (a few KiB in practice).
const maxManifestSize = 1 << 20

// Manifest is manifest.json: what the package is for, and the sha256, size and mode of
// every file in it (manifest.json itself aside).
type Manifest struct {
	FormatVersion     int    `json:"formatVersion"`
	KubernetesVersion string `json:"kubernetesVersion"`
	Arch              string `json:"arch"`
	// Versions of the components, for people and reports (kubelet, containerd, ...).
	Versions map[string]string `json:"versions,omitempty"`
	// Images are image tarballs in the package and the reference each is tagged with.
	Images []Image `json:"images,omitempty"`
	Files  []File  `json:"files"`
}

// Image is an image tarball of the package (images/pause.tar) and its reference.
type Image struct {
	Path string `json:"path"`
	Ref  string `json:"ref"`
}

// File is one file of the package.
type File struct {
	Path   string   `json:"path"`
	SHA256 string   `json:"sha256"`
	Mode   FileMode `json:"mode"`
	Size   int64    `json:"size"`
}

// FileMode is a file's permission bits, written in manifest.json as an octal string
// ("0755") that people can read.
type FileMode fs.FileMode

func (m FileMode) String() string { return fmt.Sprintf("%04o", uint32(m)) }

func (m FileMode) MarshalJSON() ([]byte, error) { return json.Marshal(m.String()) }

var modeRE = regexp.MustCompile(`^0[0-7]{3}$`)

func (m *FileMode) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil || !modeRE.MatchString(s) {
		return fmt.Errorf("mode %s: want an octal string such as \"0755\"", b)
	}
	v, _ := strconv.ParseUint(s, 8, 32)
	*m = FileMode(v)
	return nil
}

var (
	sha256RE  = regexp.MustCompile(`^[0-9a-f]{64}$`)
	versionRE = regexp.MustCompile(`^v[0-9]+\.[0-9]+\.[0-9]+([-+][0-9A-Za-z.+-]+)?$`)
)

// ParseManifest decodes and validates manifest.json. The format version is checked
// first, so a newer package gets "unknown format" rather than an error about a field.
func ParseManifest(data []byte) (*Manifest, error) {
	var head struct {
		FormatVersion *int `json:"formatVersion"`
	}
	if err := json.Unmarshal(data, &head); err != nil {
		return nil, fmt.Errorf("%w: %s is not valid JSON: %v", ErrManifest, ManifestName, err)
	}
	if head.FormatVersion == nil {
		return nil, fmt.Errorf("%w: %s has no formatVersion", ErrManifest, ManifestName)
	}
	if v := *head.FormatVersion; v != FormatVersion {
		if v > FormatVersion {
			return nil, fmt.Errorf("%w: the package has format %d, newer than the %d this edgeadm reads; use the edgeadm release that built the package",
				ErrFormat, v, FormatVersion)
		}
		return nil, fmt.Errorf("%w: the package has format %d; this edgeadm reads format %d: rebuild the package with make install-pkg",
			ErrFormat, v, FormatVersion)
	}
	var m Manifest
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrManifest, ManifestName, err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%w: %s: data after the JSON object", ErrManifest, ManifestName)
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return &m, nil
}

// ReadManifest reads manifest.json from the start of a package archive, without
// unpacking anything else: to show what a package is (edgeadm join --dry-run, tools).
// Only the manifest itself is checked.
func ReadManifest(r io.Reader) (*Manifest, error) {
	gz, err := gzip.NewReader(r)
	if err != nil {
		return nil, corrupt(err)
	}
	m, _, err := readManifestEntry(tar.NewReader(gz))
	return m, err
}

// readManifestEntry reads the first entry of tr, which must be manifest.json, and
// returns it parsed and as read.
func readManifestEntry(tr *tar.Reader) (*Manifest, []byte, error) {
	hdr, err := tr.Next()
	if errors.Is(err, io.EOF) {
		return nil, nil, fmt.Errorf("%w: the archive is empty", ErrManifest)
	}
	if err != nil {
		return nil, nil, corrupt(err)
	}
	if hdr.Name != ManifestName || !isRegular(hdr) {
		return nil, nil, fmt.Errorf("%w: the archive starts with %q, not %s: it is not an edgeadm install package (build one with make install-pkg)",
			ErrManifest, hdr.Name, ManifestName)
	}
	if hdr.Size > maxManifestSize {
		return nil, nil, fmt.Errorf("%w: %s is %d bytes, more than %d", ErrTooLarge, ManifestName, hdr.Size, maxManifestSize)
	}
	data, err := io.ReadAll(tr)
	if err != nil {
		return nil, nil, corrupt(err)
	}
	m, err := ParseManifest(data)
	return m, data, err
}

// Validate checks the manifest on its own: known arch, a Kubernetes version, well-formed
// and unique paths, sha256 sums and modes, the files format 1 requires, and images that
// are files of the package.
func (m *Manifest) Validate() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s: %s", ErrManifest, ManifestName, fmt.Sprintf(format, a...))
	}
	if m.FormatVersion != FormatVersion {
		return bad("formatVersion %d, want %d", m.FormatVersion, FormatVersion)
	}
	if !versionRE.MatchString(m.KubernetesVersion) {
		return bad("kubernetesVersion %q is not a version like v1.37.1", m.KubernetesVersion)
	}
	if a, ok := NormalizeArch(m.Arch); !ok || a != m.Arch {
		return bad("arch %q is not a Go architecture name (amd64, arm64, ...)", m.Arch)
	}
	if len(m.Files) == 0 {
		return bad("lists no files")
	}
	seen := make(map[string]bool, len(m.Files))
	for _, f := range m.Files {
		if err := checkName(f.Path); err != nil {
			return bad("file %q: %v", f.Path, err)
		}
		if f.Path == ManifestName {
			return bad("lists itself")
		}
		if seen[f.Path] {
			return bad("lists %s twice", f.Path)
		}
		seen[f.Path] = true
		if !sha256RE.MatchString(f.SHA256) {
			return bad("file %s: sha256 %q is not 64 lower-case hex digits", f.Path, f.SHA256)
		}
		if f.Size < 0 {
			return bad("file %s: negative size", f.Path)
		}
		if err := checkMode(fs.FileMode(f.Mode)); err != nil {
			return bad("file %s: %v", f.Path, err)
		}
	}
	// A file and a directory cannot share a path ("bin" and "bin/kubelet").
	for p := range seen {
		for d := path.Dir(p); d != "."; d = path.Dir(d) {
			if seen[d] {
				return bad("%s is listed as a file but %s needs it to be a directory", d, p)
			}
		}
	}
	for _, r := range required {
		if !seen[r.path] {
			return bad("lacks %s (%s), which every package of format %d has", r.path, r.what, FormatVersion)
		}
	}
	for _, f := range m.Files {
		if isExecutablePath(f.Path) && f.Mode&0o100 == 0 {
			return bad("file %s: mode %v is not executable", f.Path, f.Mode)
		}
	}
	if seen[edgehubBin] != seen[edgehubUnit] {
		return bad("has only one of %s and %s; edgehub needs both", edgehubBin, edgehubUnit)
	}
	for _, im := range m.Images {
		if !seen[im.Path] {
			return bad("image %s is not a file of the package", im.Path)
		}
		if im.Ref == "" || strings.ContainsAny(im.Ref, " \t\n") {
			return bad("image %s: bad reference %q", im.Path, im.Ref)
		}
	}
	if m.image(pauseImage) == nil {
		return bad("names no reference for %s in images", pauseImage)
	}
	return nil
}

// File returns the entry for p, or nil.
func (m *Manifest) File(p string) *File {
	for i := range m.Files {
		if m.Files[i].Path == p {
			return &m.Files[i]
		}
	}
	return nil
}

func (m *Manifest) image(p string) *Image {
	for i := range m.Images {
		if m.Images[i].Path == p {
			return &m.Images[i]
		}
	}
	return nil
}

// checkName accepts a clean relative slash path: no leading "/", no "." or ".."
// element, no empty element, no NUL. Archive entries and manifest paths both pass it.
func checkName(name string) error {
	switch {
	case name == "":
		return errors.New("empty path")
	case len(name) > 1024:
		return errors.New("path longer than 1024 bytes")
	case strings.ContainsRune(name, 0):
		return errors.New("path contains NUL")
	case strings.HasPrefix(name, "/"):
		return errors.New("absolute path")
	}
	for _, el := range strings.Split(name, "/") {
		if el == ".." {
			return errors.New(`path contains ".."`)
		}
	}
	if path.Clean(name) != name {
		return fmt.Errorf("path is not clean (want %q)", path.Clean(name))
	}
	return nil
}

// checkMode refuses what no file of an install package needs: setuid, setgid and sticky
// bits, and write access for group or others. Files must be readable by their owner.
func checkMode(m fs.FileMode) error {
	switch {
	case m&^fs.ModePerm != 0:
		return fmt.Errorf("mode %04o has setuid, setgid or sticky bits", uint32(m))
	case m&0o022 != 0:
		return fmt.Errorf("mode %04o is writable by group or others", uint32(m))
	case m&0o400 == 0:
		return fmt.Errorf("mode %04o is not readable by its owner", uint32(m))
	}
	return nil
}
