// Command ociimage builds and inspects single-layer image tarballs without Docker or a
// registry, for the test environment: `ctr -n k8s.io images import FILE` loads them.
//
//	ociimage build -o OUT.tar -tag REF [-tag REF...] [-arch GOARCH] [-entrypoint /bin] [-user UID:GID] -add /DEST=SRC [-add ...]
//	ociimage inspect [-tag REF] [-extract /PATH=OUT] FILE.tar
//
// build packs the given files into one layer (owner root, mode from the source file,
// mtime 0, so the same inputs always give the same digests) on top of an empty image.
// inspect reads a tarball back with go-containerregistry and prints its manifest, config
// and files, which scripts/test-env.sh uses to check what it built.
package main

import (
	"archive/tar"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

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
		fmt.Fprintln(os.Stderr, "ociimage:", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: ociimage build -o OUT.tar -tag REF [-tag REF...] [-arch GOARCH] [-entrypoint /bin] [-user UID:GID] -add /DEST=SRC [-add ...]")
	fmt.Fprintln(os.Stderr, "       ociimage inspect [-tag REF] [-extract /PATH=OUT] FILE.tar")
	os.Exit(2)
}

func build(args []string) error {
	fs := flag.NewFlagSet("build", flag.ExitOnError)
	out := fs.String("o", "", "output tarball")
	entrypoint := fs.String("entrypoint", "", "entrypoint (one path, no arguments)")
	user := fs.String("user", "", "user the container runs as, e.g. 65535:65535")
	arch := fs.String("arch", runtime.GOARCH, "architecture the image is for (the files added must be built for it)")
	var tags, adds multiFlag
	fs.Var(&tags, "tag", "image reference to tag the image with (repeatable)")
	fs.Var(&adds, "add", "/DEST=SRC: put the file SRC at /DEST in the layer (repeatable)")
	fs.Parse(args)
	if *out == "" || len(tags) == 0 || len(adds) == 0 || fs.NArg() != 0 {
		usage()
	}

	layerTar, err := tarFiles(adds)
	if err != nil {
		return err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerTar)), nil
	})
	if err != nil {
		return err
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		return err
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return err
	}
	cfg = cfg.DeepCopy()
	cfg.OS = "linux"
	cfg.Architecture = *arch
	cfg.Created = v1.Time{Time: time.Unix(0, 0).UTC()}
	cfg.Config.User = *user
	cfg.Config.WorkingDir = "/"
	if *entrypoint != "" {
		cfg.Config.Entrypoint = []string{*entrypoint}
	}
	img, err = mutate.ConfigFile(img, cfg)
	if err != nil {
		return err
	}

	refs := map[name.Reference]v1.Image{}
	for _, t := range tags {
		tag, err := name.NewTag(t, name.StrictValidation)
		if err != nil {
			return fmt.Errorf("tag %q: %w", t, err)
		}
		refs[tag] = img
	}
	// Write next to the target and rename, so a reader never sees half a tarball.
	tmp := *out + ".tmp"
	if err := tarball.MultiRefWriteToFile(tmp, refs); err != nil {
		os.Remove(tmp)
		return err
	}
	return os.Rename(tmp, *out)
}

// tarFiles makes an uncompressed layer holding each SRC at /DEST, with its parent
// directories, in a fixed order.
func tarFiles(adds []string) ([]byte, error) {
	type entry struct{ dest, src string }
	var files []entry
	dirs := map[string]bool{}
	for _, a := range adds {
		dest, src, ok := strings.Cut(a, "=")
		if !ok || !strings.HasPrefix(dest, "/") || src == "" {
			return nil, fmt.Errorf("-add %q: want /DEST=SRC", a)
		}
		dest = strings.TrimPrefix(path.Clean(dest), "/")
		files = append(files, entry{dest, src})
		for d := path.Dir(dest); d != "."; d = path.Dir(d) {
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
	epoch := time.Unix(0, 0)
	for _, d := range dirList {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d + "/", Mode: 0o755, ModTime: epoch, Format: tar.FormatPAX}); err != nil {
			return nil, err
		}
	}
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
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, err
		}
		if _, err := tw.Write(data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func inspect(args []string) error {
	fs := flag.NewFlagSet("inspect", flag.ExitOnError)
	tagFlag := fs.String("tag", "", "image reference to read (needed when the tarball holds several images)")
	var extracts multiFlag
	fs.Var(&extracts, "extract", "/PATH=OUT: copy the file /PATH of the image to OUT (repeatable)")
	fs.Parse(args)
	if fs.NArg() != 1 {
		usage()
	}
	file := fs.Arg(0)

	var tag *name.Tag
	if *tagFlag != "" {
		t, err := name.NewTag(*tagFlag, name.StrictValidation)
		if err != nil {
			return err
		}
		tag = &t
	}
	img, err := tarball.ImageFromPath(file, tag)
	if err != nil {
		return err
	}
	mf, err := tarball.LoadManifest(func() (io.ReadCloser, error) { return os.Open(file) })
	if err != nil {
		return err
	}
	for _, d := range mf {
		fmt.Printf("tags: %s\n", strings.Join(d.RepoTags, " "))
	}
	digest, err := img.Digest()
	if err != nil {
		return err
	}
	mt, err := img.MediaType()
	if err != nil {
		return err
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return err
	}
	fmt.Printf("digest: %s\nmediaType: %s\nplatform: %s/%s\nentrypoint: %q\nuser: %q\n",
		digest, mt, cfg.OS, cfg.Architecture, cfg.Config.Entrypoint, cfg.Config.User)

	want := map[string]string{}
	for _, e := range extracts {
		p, out, ok := strings.Cut(e, "=")
		if !ok {
			return fmt.Errorf("-extract %q: want /PATH=OUT", e)
		}
		want[strings.TrimPrefix(path.Clean(p), "/")] = out
	}
	layers, err := img.Layers()
	if err != nil {
		return err
	}
	for i, l := range layers {
		d, err := l.Digest()
		if err != nil {
			return err
		}
		lmt, err := l.MediaType()
		if err != nil {
			return err
		}
		fmt.Printf("layer %d: %s %s\n", i, d, lmt)
		rc, err := l.Uncompressed()
		if err != nil {
			return err
		}
		tr := tar.NewReader(rc)
		for {
			h, err := tr.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				rc.Close()
				return err
			}
			fmt.Printf("  %s %5d:%-5d %9d /%s\n", os.FileMode(h.Mode).String(), h.Uid, h.Gid, h.Size, strings.TrimSuffix(h.Name, "/"))
			if out, ok := want[strings.TrimSuffix(h.Name, "/")]; ok && h.Typeflag == tar.TypeReg {
				if err := writeFile(out, tr, os.FileMode(h.Mode).Perm()); err != nil {
					rc.Close()
					return err
				}
				delete(want, strings.TrimSuffix(h.Name, "/"))
			}
		}
		rc.Close()
	}
	for p := range want {
		return fmt.Errorf("-extract: /%s is not in the image", p)
	}
	return nil
}

func writeFile(out string, r io.Reader, mode os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(out, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
