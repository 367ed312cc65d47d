// Command installpkg packs and checks edge install packages for scripts/install-pkg.sh.
//
//	installpkg pack -stage DIR -o FILE -arch ARCH -kubernetes-version V [-version NAME=V ...] [-image PATH=REF ...]
//	installpkg verify -arch ARCH FILE
//	installpkg bench [-n RUNS] FILE
//
// pack writes FILE (reproducible: see installpkg.WriteArchive) and FILE.sha256 (in
// sha256sum's format), then opens FILE the way edgeadm join does, as a host of ARCH
// would, so a package that join would refuse is never left behind. verify does only
// that last step. Both print what they checked. bench compares join's fetch, verify and
// unpack with curl | sha256sum and tar xzf (bench.go).
package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/edgeadm/edgeadm/pkg/installpkg"
)

type pairs map[string]string

func (p pairs) String() string { return fmt.Sprint(map[string]string(p)) }

func (p pairs) Set(v string) error {
	k, val, ok := strings.Cut(v, "=")
	if !ok || k == "" || val == "" {
		return fmt.Errorf("%q: want KEY=VALUE", v)
	}
	p[k] = val
	return nil
}

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	var err error
	switch os.Args[1] {
	case "pack":
		err = pack(os.Args[2:])
	case "verify":
		err = verifyCmd(os.Args[2:])
	case "bench":
		err = bench(os.Args[2:])
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "installpkg:", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: installpkg pack -stage DIR -o FILE -arch ARCH -kubernetes-version V [-version NAME=V ...] [-image PATH=REF ...]")
	fmt.Fprintln(os.Stderr, "       installpkg verify -arch ARCH FILE")
	fmt.Fprintln(os.Stderr, "       installpkg bench [-n RUNS] FILE")
	os.Exit(2)
}

func pack(args []string) error {
	fs := flag.NewFlagSet("pack", flag.ExitOnError)
	stage := fs.String("stage", "", "staged package tree")
	out := fs.String("o", "", "archive to write")
	arch := fs.String("arch", "", "architecture (Go name: amd64, arm64)")
	k8s := fs.String("kubernetes-version", "", "Kubernetes version, e.g. v1.37.1")
	versions, images := pairs{}, pairs{}
	fs.Var(versions, "version", "NAME=VERSION of a component (repeatable)")
	fs.Var(images, "image", "PATH=REF: an image tarball in the package and its reference (repeatable)")
	fs.Parse(args)
	if *stage == "" || *out == "" || *arch == "" || *k8s == "" || fs.NArg() != 0 {
		usage()
	}
	in := installpkg.BuildInput{Dir: *stage, KubernetesVersion: *k8s, Arch: *arch, Versions: versions}
	for p, ref := range images {
		in.Images = append(in.Images, installpkg.Image{Path: p, Ref: ref})
	}
	sort.Slice(in.Images, func(i, j int) bool { return in.Images[i].Path < in.Images[j].Path })

	// Write next to the target and rename, so a reader never sees half a package.
	tmp, err := os.CreateTemp(filepath.Dir(*out), ".installpkg-*.tmp")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	h := sha256.New()
	m, err := installpkg.WriteArchive(io.MultiWriter(tmp, h), in)
	if err == nil {
		err = tmp.Chmod(0o644)
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	sum := hex.EncodeToString(h.Sum(nil))
	if err := verify(tmp.Name(), filepath.Base(*out), *arch, sum); err != nil {
		return fmt.Errorf("the package just built does not open: %w", err)
	}
	if err := os.Rename(tmp.Name(), *out); err != nil {
		return err
	}
	line := fmt.Sprintf("%s  %s\n", sum, filepath.Base(*out))
	if err := os.WriteFile(*out+".sha256", []byte(line), 0o644); err != nil {
		return err
	}
	st, err := os.Stat(*out)
	if err != nil {
		return err
	}
	fmt.Printf("%s: %d files and manifest.json, %.1f MiB, sha256 %s\n", *out, len(m.Files), float64(st.Size())/(1<<20), sum)
	return nil
}

func verifyCmd(args []string) error {
	fs := flag.NewFlagSet("verify", flag.ExitOnError)
	arch := fs.String("arch", "", "architecture of the host the package is checked for")
	fs.Parse(args)
	if *arch == "" || fs.NArg() != 1 {
		usage()
	}
	return verify(fs.Arg(0), filepath.Base(fs.Arg(0)), *arch, "")
}

// verify opens the package as edgeadm join would on a host of arch, pinned to sum if
// given, into a temp dir that is removed afterwards. name is what the output calls it.
func verify(file, name, arch, sum string) error {
	abs, err := filepath.Abs(file)
	if err != nil {
		return err
	}
	src, err := installpkg.ParseSource(abs, nil)
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp(filepath.Dir(abs), ".installpkg-verify-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	p, err := installpkg.Open(context.Background(), installpkg.Options{
		Source: src, SHA256: sum, Dir: dir, HostArch: arch, Progress: io.Discard,
	})
	if err != nil {
		return err
	}
	defer p.Close()
	if err := p.Verify(); err != nil {
		return err
	}
	if p.Manifest.Arch != arch {
		return errors.New("arch mismatch")
	}
	fmt.Printf("verified %s as join opens it: format %d, Kubernetes %s, %s, %d files and manifest.json\n", name, p.Manifest.FormatVersion,
		p.Manifest.KubernetesVersion, p.Manifest.Arch, len(p.Manifest.Files))
	return nil
}
