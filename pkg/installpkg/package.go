package installpkg

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

// Options of Open.
type Options struct {
	// Source is the parsed --install-pkg-path.
	Source *Source
	// SHA256 pins the archive (--install-pkg-sha256: 64 hex digits, "sha256:" prefix
	// allowed). Empty: no pin, and the manifest is all that vouches for the files.
	SHA256 string
	// Dir is where the private temp dir is made; see FetchOptions.Dir.
	Dir string
	// Progress receives download progress and a summary line; nil: silent.
	Progress io.Writer
	// Limits bound the archive; zero fields take DefaultLimits.
	Limits Limits
	// HostArch overrides the detected architecture (tests, dry runs for another host).
	HostArch string
	// Accept, if set, makes further checks of the manifest (a Kubernetes version the
	// cluster accepts, say) before any file but manifest.json is unpacked.
	Accept func(*Manifest) error
	// Network knobs: see FetchOptions.
	DialTimeout, IdleTimeout time.Duration
	RootCAs                  *x509.CertPool
}

// Package is a fetched, unpacked and verified install package. Its files sit in a
// private temp dir until Close.
type Package struct {
	// Dir is the private temp dir (0700); Root, inside it, holds the package's files.
	Dir  string
	Root string
	// Source is the redacted source it came from; SHA256 and Size are the archive's.
	Source string
	SHA256 string
	Size   int64
	// Manifest is the package's manifest.json; Components the paths of its parts.
	Manifest   *Manifest
	Components Components
}

var pinRE = regexp.MustCompile(`^[0-9a-f]{64}$`)

// ParseSHA256 normalises an --install-pkg-sha256 value to 64 lower-case hex digits.
func ParseSHA256(s string) (string, error) {
	v := strings.ToLower(strings.TrimSpace(s))
	v = strings.TrimPrefix(v, "sha256:")
	if !pinRE.MatchString(v) {
		return "", fmt.Errorf("--install-pkg-sha256 %q is not a sha256 sum: want 64 hex digits, as printed by sha256sum or in the .sha256 file next to the package", s)
	}
	return v, nil
}

// Open fetches the package from o.Source into a private temp dir below o.Dir, checks the
// archive against o.SHA256 (on a mismatch nothing is unpacked), unpacks it with the safe
// extractor while checking every file against manifest.json, checks the format and that
// the package's arch is the host's, and returns the verified Package. On error nothing
// is left behind.
func Open(ctx context.Context, o Options) (*Package, error) {
	if o.Source == nil {
		return nil, fmt.Errorf("%w: no install package given; accepted: %s", ErrSource, AcceptedForms)
	}
	pin := ""
	if o.SHA256 != "" {
		var err error
		if pin, err = ParseSHA256(o.SHA256); err != nil {
			return nil, err
		}
	}
	host, machine := o.HostArch, o.HostArch
	if host == "" {
		host, machine = HostArch()
	} else if a, ok := NormalizeArch(host); ok {
		host = a
	}
	lim := o.Limits.withDefaults()

	d, err := Fetch(ctx, o.Source, FetchOptions{
		Dir: o.Dir, Progress: o.Progress, MaxSize: lim.MaxArchive,
		DialTimeout: o.DialTimeout, IdleTimeout: o.IdleTimeout, RootCAs: o.RootCAs,
	})
	if err != nil {
		return nil, err
	}
	p, err := open(d, o, pin, host, machine, lim)
	if err != nil {
		d.Remove()
		return nil, err
	}
	return p, nil
}

func open(d *Download, o Options, pin, host, machine string, lim Limits) (*Package, error) {
	if pin != "" && d.SHA256 != pin {
		return nil, fmt.Errorf("%w: %v has sha256 %s, but --install-pkg-sha256 is %s; it is not the package you pinned "+
			"(damaged, replaced, or the pin belongs to another package): nothing was unpacked", ErrChecksum, o.Source, d.SHA256, pin)
	}
	start := time.Now()
	root := filepath.Join(d.Dir, "root")
	if err := os.Mkdir(root, 0o755); err != nil {
		return nil, err
	}
	f, err := os.Open(d.Path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	accept := func(m *Manifest) error {
		if m.Arch != host {
			return fmt.Errorf("%w: the package is for %s but this host is %s (uname -m: %s); use kube-linux-%s-%s.tar.gz",
				ErrArch, m.Arch, host, machine, host, m.KubernetesVersion)
		}
		if o.Accept != nil {
			return o.Accept(m)
		}
		return nil
	}
	m, err := unpack(f, root, lim, accept)
	if err != nil {
		return nil, fmt.Errorf("install package %v: %w", o.Source, err)
	}
	if err := verifyTree(root, m, false); err != nil {
		return nil, fmt.Errorf("install package %v: %w", o.Source, err)
	}
	// The archive has served its purpose; edge hosts are often short of disk.
	if err := os.Remove(d.Path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	if o.Progress != nil {
		fmt.Fprintf(o.Progress, "verified %d files of the %s package for Kubernetes %s against %s in %s\n",
			len(m.Files), m.Arch, m.KubernetesVersion, ManifestName, time.Since(start).Round(time.Millisecond))
	}
	return &Package{
		Dir: d.Dir, Root: root, Source: o.Source.String(), SHA256: d.SHA256, Size: d.Size,
		Manifest: m, Components: componentsOf(root, m),
	}, nil
}

// Verify checks the unpacked files again, sha256 included: for a caller that wants to
// be sure nothing changed them between Open and installing.
func (p *Package) Verify() error { return verifyTree(p.Root, p.Manifest, true) }

// Close removes the temp dir and everything unpacked into it.
func (p *Package) Close() error { return os.RemoveAll(p.Dir) }
