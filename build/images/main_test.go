package main

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/layout"
)

// build writes a two-arch image of two tiny files and returns the tarball's bytes.
func buildTestImage(t *testing.T, dir string) []byte {
	t.Helper()
	for _, a := range []string{"amd64", "arm64"} {
		if err := os.WriteFile(filepath.Join(dir, "bin-"+a), []byte("binary for "+a), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	out := filepath.Join(dir, "img.tar")
	err := build([]string{"-o", out, "-ref", "docker.io/superedge/edge-coredns:v1.2.3", "-entrypoint", "/coredns",
		"-user", "65532:65532", "-netbind", "/coredns",
		"-bin", "arm64=/coredns=" + filepath.Join(dir, "bin-arm64"), "-bin", "amd64=/coredns=" + filepath.Join(dir, "bin-amd64")})
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestBuildIsReproducibleAndAValidLayout(t *testing.T) {
	first := buildTestImage(t, t.TempDir())
	if second := buildTestImage(t, t.TempDir()); !bytes.Equal(first, second) {
		t.Fatal("two builds of the same inputs differ")
	}

	// Unpack and read it back with go-containerregistry's OCI layout reader.
	dir := t.TempDir()
	tr := tar.NewReader(bytes.NewReader(first))
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if !h.ModTime.Equal(epoch) {
			t.Errorf("%s has mtime %s", h.Name, h.ModTime)
		}
		p := filepath.Join(dir, h.Name)
		if h.Typeflag == tar.TypeDir {
			os.MkdirAll(p, 0o755)
			continue
		}
		b, _ := io.ReadAll(tr)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	top, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		t.Fatal(err)
	}
	tm, err := top.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(tm.Manifests) != 1 || tm.Manifests[0].Annotations["io.containerd.image.name"] != "docker.io/superedge/edge-coredns:v1.2.3" {
		t.Fatalf("index.json = %+v", tm)
	}
	idx, err := top.ImageIndex(tm.Manifests[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	var arches []string
	for _, d := range im.Manifests {
		arches = append(arches, d.Platform.Architecture)
		img, err := idx.Image(d.Digest)
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		if cfg.Architecture != d.Platform.Architecture || cfg.Config.User != "65532:65532" || cfg.Config.Entrypoint[0] != "/coredns" || !cfg.Created.Equal(epoch) {
			t.Errorf("%s config: arch %s user %q entrypoint %q created %s", d.Platform.Architecture, cfg.Architecture, cfg.Config.User, cfg.Config.Entrypoint, cfg.Created)
		}
		layers, _ := img.Layers()
		rc, err := layers[0].Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		lt := tar.NewReader(rc)
		h, err := lt.Next()
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(lt)
		rc.Close()
		if h.Name != "coredns" || string(data) != "binary for "+d.Platform.Architecture || h.PAXRecords["SCHILY.xattr.security.capability"] != netBindCap {
			t.Errorf("%s layer: %s %q caps %q", d.Platform.Architecture, h.Name, data, h.PAXRecords["SCHILY.xattr.security.capability"])
		}
	}
	if len(arches) != 2 || arches[0] != "amd64" || arches[1] != "arm64" {
		t.Errorf("platforms %v", arches)
	}
}

func TestBuildRejectsBadInput(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "b")
	os.WriteFile(bin, []byte("x"), 0o755)
	for _, args := range [][]string{
		{"-o", filepath.Join(dir, "o.tar"), "-ref", "Not A Ref", "-entrypoint", "/b", "-bin", "amd64=/b=" + bin},
		{"-o", filepath.Join(dir, "o.tar"), "-ref", "r.example/x:1", "-entrypoint", "/b", "-bin", "amd64=b"},
		{"-o", filepath.Join(dir, "o.tar"), "-ref", "r.example/x:1", "-entrypoint", "/b", "-netbind", "/other", "-bin", "amd64=/b=" + bin},
	} {
		if err := build(args); err == nil {
			t.Errorf("build %v succeeded", args)
		}
		if _, err := os.Stat(filepath.Join(dir, "o.tar")); err == nil {
			t.Errorf("build %v left a tarball", args)
		}
	}
}
