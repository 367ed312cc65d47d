// Command images builds the multi-arch image tarballs of `make images` without
// Docker or a registry (docs/images.md), and reads them back.
//
//	images build -o OUT.tar -ref REPO/NAME:TAG -entrypoint /BIN [-user UID:GID]
//	       [-netbind /BIN] -bin ARCH=/DEST=SRC [-bin ...] [-arg ARG ...]
//	images inspect FILE.tar
//
// build makes one image per architecture, each a single layer holding the
// -bin files of that architecture (owner root, mode from the source, mtime 0),
// and an OCI image index over them, and writes the whole as an OCI image
// layout tarball: oci-layout, index.json naming the index with the reference
// (io.containerd.image.name, which `ctr images import` uses), and the blobs.
// Every timestamp is fixed, so the same inputs give the same bytes.
//
// -netbind gives /BIN the file capability cap_net_bind_service (as an xattr
// in the layer), so a non-root process may bind port 53 (edge coredns).
package main

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path"
	"sort"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

var epoch = time.Unix(0, 0).UTC()

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	var err error
	switch os.Args[1] {
	case "build":
		err = build(os.Args[2:])
	case "inspect":
		err = inspect(os.Args[2:])
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "images:", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: images build -o OUT.tar -ref REPO/NAME:TAG -entrypoint /BIN [-user UID:GID] [-netbind /BIN] -bin ARCH=/DEST=SRC [-bin ...] [-arg ARG ...]")
	fmt.Fprintln(os.Stderr, "       images inspect FILE.tar")
	os.Exit(2)
}

type file struct{ dest, src string }

func build(args []string) error {
	fs := flag.NewFlagSet("build", flag.ExitOnError)
	out := fs.String("o", "", "output tarball (OCI image layout)")
	ref := fs.String("ref", "", "image reference, REPO/NAME:TAG")
	entrypoint := fs.String("entrypoint", "", "entrypoint (one path)")
	user := fs.String("user", "", "user the container runs as, e.g. 65532:65532")
	netbind := fs.String("netbind", "", "give this file of the image cap_net_bind_service")
	var bins, cmdArgs multiFlag
	fs.Var(&bins, "bin", "ARCH=/DEST=SRC: the file SRC at /DEST in the ARCH image (repeatable)")
	fs.Var(&cmdArgs, "arg", "default argument (repeatable)")
	fs.Parse(args)
	if *out == "" || *ref == "" || *entrypoint == "" || len(bins) == 0 || fs.NArg() != 0 {
		usage()
	}
	tag, err := name.NewTag(*ref, name.StrictValidation)
	if err != nil {
		return fmt.Errorf("-ref %q: %w (want REPO/NAME:TAG)", *ref, err)
	}

	perArch := map[string][]file{}
	for _, b := range bins {
		arch, rest, ok := strings.Cut(b, "=")
		dest, src, ok2 := strings.Cut(rest, "=")
		if !ok || !ok2 || arch == "" || !strings.HasPrefix(dest, "/") || src == "" {
			return fmt.Errorf("-bin %q: want ARCH=/DEST=SRC", b)
		}
		perArch[arch] = append(perArch[arch], file{strings.TrimPrefix(path.Clean(dest), "/"), src})
	}
	var arches []string
	for a := range perArch {
		arches = append(arches, a)
	}
	sort.Strings(arches)

	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	for _, arch := range arches {
		img, err := image(arch, perArch[arch], *entrypoint, cmdArgs, *user, strings.TrimPrefix(*netbind, "/"))
		if err != nil {
			return fmt.Errorf("%s image: %w", arch, err)
		}
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{
			Add:        img,
			Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: arch}},
		})
	}
	return writeLayout(*out, *ref, tag.TagStr(), idx)
}

// image is one architecture's image: its files in one layer on nothing.
func image(arch string, files []file, entrypoint string, args []string, user, netbind string) (v1.Image, error) {
	layerTar, err := tarFiles(files, netbind)
	if err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerTar)), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, err
	}
	base := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	base = mutate.ConfigMediaType(base, types.OCIConfigJSON)
	img, err := mutate.Append(base, mutate.Addendum{Layer: layer, History: v1.History{Created: v1.Time{Time: epoch}, CreatedBy: "edgeadm make images"}})
	if err != nil {
		return nil, err
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cfg = cfg.DeepCopy()
	cfg.OS = "linux"
	cfg.Architecture = arch
	cfg.Created = v1.Time{Time: epoch}
	cfg.Config.User = user
	cfg.Config.WorkingDir = "/"
	cfg.Config.Entrypoint = []string{entrypoint}
	cfg.Config.Cmd = args
	return mutate.ConfigFile(img, cfg)
}

// netBindCap is the security.capability xattr (VFS_CAP_REVISION_2, the
// effective bit set) granting cap_net_bind_service (bit 10) in the permitted
// set: what `setcap cap_net_bind_service=+ep` writes.
var netBindCap = string([]byte{0x01, 0x00, 0x00, 0x02, 0x00, 0x04, 0x00, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})

// tarFiles makes an uncompressed layer holding each file with its parent
// directories, in a fixed order and with fixed owners and times.
func tarFiles(files []file, netbind string) ([]byte, error) {
	dirs := map[string]bool{}
	for _, f := range files {
		for d := path.Dir(f.dest); d != "."; d = path.Dir(d) {
			dirs[d] = true
		}
	}
	var dirList []string
	for d := range dirs {
		dirList = append(dirList, d)
	}
	sort.Strings(dirList)
	sort.Slice(files, func(i, j int) bool { return files[i].dest < files[j].dest })

	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, d := range dirList {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d + "/", Mode: 0o755, ModTime: epoch, Format: tar.FormatPAX}); err != nil {
			return nil, err
		}
	}
	found := netbind == ""
	for _, f := range files {
		data, err := os.ReadFile(f.src)
		if err != nil {
			return nil, err
		}
		st, err := os.Stat(f.src)
		if err != nil {
			return nil, err
		}
		hdr := &tar.Header{Typeflag: tar.TypeReg, Name: f.dest, Mode: int64(st.Mode().Perm()), Size: int64(len(data)), ModTime: epoch, Format: tar.FormatPAX}
		if f.dest == netbind {
			hdr.PAXRecords = map[string]string{"SCHILY.xattr.security.capability": netBindCap}
			found = true
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, err
		}
		if _, err := tw.Write(data); err != nil {
			return nil, err
		}
	}
	if !found {
		return nil, fmt.Errorf("-netbind /%s: no such file in the image", netbind)
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// writeLayout writes idx and everything it refers to as an OCI image layout
// tarball, entries sorted, so equal inputs give equal bytes. It writes next
// to out and renames, so a reader never sees half a tarball.
// ref is written as given, not as go-containerregistry normalizes it
// (docker.io would become index.docker.io, a name the kubelet never asks
// containerd for).
func writeLayout(out, ref, tag string, idx v1.ImageIndex) error {
	blobs := map[v1.Hash][]byte{}
	raw, err := idx.RawManifest()
	if err != nil {
		return err
	}
	idxDigest, err := idx.Digest()
	if err != nil {
		return err
	}
	blobs[idxDigest] = raw
	im, err := idx.IndexManifest()
	if err != nil {
		return err
	}
	for _, d := range im.Manifests {
		img, err := idx.Image(d.Digest)
		if err != nil {
			return err
		}
		if err := imageBlobs(img, blobs); err != nil {
			return err
		}
	}
	top := v1.IndexManifest{
		SchemaVersion: 2,
		MediaType:     types.OCIImageIndex,
		Manifests: []v1.Descriptor{{
			MediaType: types.OCIImageIndex,
			Digest:    idxDigest,
			Size:      int64(len(raw)),
			Annotations: map[string]string{
				// containerd names the imported image by this; other tools by
				// the OCI ref.name (the tag alone, by the spec's convention).
				"io.containerd.image.name":          ref,
				"org.opencontainers.image.ref.name": tag,
			},
		}},
	}
	indexJSON, err := json.Marshal(top)
	if err != nil {
		return err
	}

	tmp := out + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	tw := tar.NewWriter(f)
	add := func(name string, data []byte, dir bool) error {
		h := &tar.Header{Name: name, Mode: 0o644, Size: int64(len(data)), ModTime: epoch, Typeflag: tar.TypeReg, Format: tar.FormatPAX}
		if dir {
			h.Mode, h.Size, h.Typeflag = 0o755, 0, tar.TypeDir
		}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		_, err := tw.Write(data)
		return err
	}
	var hashes []v1.Hash
	for h := range blobs {
		hashes = append(hashes, h)
	}
	sort.Slice(hashes, func(i, j int) bool { return hashes[i].String() < hashes[j].String() })
	steps := []func() error{
		func() error { return add("oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`), false) },
		func() error { return add("index.json", indexJSON, false) },
		func() error { return add("blobs/", nil, true) },
		func() error { return add("blobs/sha256/", nil, true) },
	}
	for _, h := range hashes {
		steps = append(steps, func() error { return add("blobs/"+h.Algorithm+"/"+h.Hex, blobs[h], false) })
	}
	for _, s := range steps {
		if err := s(); err != nil {
			f.Close()
			return err
		}
	}
	if err := tw.Close(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, out)
}

func imageBlobs(img v1.Image, blobs map[v1.Hash][]byte) error {
	raw, err := img.RawManifest()
	if err != nil {
		return err
	}
	d, err := img.Digest()
	if err != nil {
		return err
	}
	blobs[d] = raw
	cfg, err := img.RawConfigFile()
	if err != nil {
		return err
	}
	cd, err := img.ConfigName()
	if err != nil {
		return err
	}
	blobs[cd] = cfg
	layers, err := img.Layers()
	if err != nil {
		return err
	}
	for _, l := range layers {
		ld, err := l.Digest()
		if err != nil {
			return err
		}
		rc, err := l.Compressed()
		if err != nil {
			return err
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			return err
		}
		blobs[ld] = b
	}
	return nil
}

// inspect prints what a tarball holds: the reference, the index, and per
// platform the manifest digest, user, entrypoint and files.
func inspect(args []string) error {
	if len(args) != 1 {
		usage()
	}
	entries, err := readTar(args[0])
	if err != nil {
		return err
	}
	var top v1.IndexManifest
	if err := json.Unmarshal(entries["index.json"], &top); err != nil {
		return fmt.Errorf("%s: index.json: %w", args[0], err)
	}
	if len(top.Manifests) != 1 {
		return fmt.Errorf("%s: index.json names %d images, want 1", args[0], len(top.Manifests))
	}
	blob := func(h v1.Hash) ([]byte, error) {
		b, ok := entries["blobs/"+h.Algorithm+"/"+h.Hex]
		if !ok {
			return nil, fmt.Errorf("%s: blob %s missing", args[0], h)
		}
		return b, nil
	}
	fmt.Printf("ref: %s\nindex: %s\n", top.Manifests[0].Annotations["io.containerd.image.name"], top.Manifests[0].Digest)
	raw, err := blob(top.Manifests[0].Digest)
	if err != nil {
		return err
	}
	var idx v1.IndexManifest
	if err := json.Unmarshal(raw, &idx); err != nil {
		return err
	}
	for _, d := range idx.Manifests {
		raw, err := blob(d.Digest)
		if err != nil {
			return err
		}
		var m v1.Manifest
		if err := json.Unmarshal(raw, &m); err != nil {
			return err
		}
		craw, err := blob(m.Config.Digest)
		if err != nil {
			return err
		}
		var cfg v1.ConfigFile
		if err := json.Unmarshal(craw, &cfg); err != nil {
			return err
		}
		fmt.Printf("platform: %s/%s manifest %s user %q entrypoint %q created %s\n", cfg.OS, cfg.Architecture, d.Digest,
			cfg.Config.User, cfg.Config.Entrypoint, cfg.Created.UTC().Format(time.RFC3339))
		for _, l := range m.Layers {
			lb, err := blob(l.Digest)
			if err != nil {
				return err
			}
			if err := listLayer(lb); err != nil {
				return fmt.Errorf("layer %s: %w", l.Digest, err)
			}
		}
	}
	return nil
}

func listLayer(compressed []byte) error {
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(compressed)), nil })
	if err != nil {
		return err
	}
	rc, err := layer.Uncompressed()
	if err != nil {
		return err
	}
	defer rc.Close()
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		caps := ""
		if _, ok := h.PAXRecords["SCHILY.xattr.security.capability"]; ok {
			caps = " cap_net_bind_service=ep"
		}
		fmt.Printf("  %s %d:%d %9d /%s%s\n", os.FileMode(h.Mode).String(), h.Uid, h.Gid, h.Size, strings.TrimSuffix(h.Name, "/"), caps)
	}
}

func readTar(file string) (map[string][]byte, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := map[string][]byte{}
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
		if h.Typeflag != tar.TypeReg {
			continue
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			return nil, err
		}
		out[h.Name] = b
	}
}
