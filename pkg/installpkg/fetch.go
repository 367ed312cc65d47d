package installpkg

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// FetchOptions bound and observe a download.
type FetchOptions struct {
	// Dir is where the private temp dir is made. Put it on the file system the package
	// is installed to, so the join workflow can rename files into place. It must exist.
	Dir string
	// Progress receives "bytes/total" updates while it is a terminal, and one summary line
	// at the end in any case. nil: silent.
	Progress io.Writer
	// MaxSize bounds the archive (default DefaultLimits.MaxArchive).
	MaxSize int64
	// DialTimeout bounds each connection attempt (default 30s).
	DialTimeout time.Duration
	// IdleTimeout fails a transfer that moves no byte for this long (default 60s).
	IdleTimeout time.Duration
	// RootCAs verifies https servers; nil uses the system's roots.
	RootCAs *x509.CertPool
}

const (
	defaultDialTimeout = 30 * time.Second
	defaultIdleTimeout = 60 * time.Second
	archiveName        = "package.tar.gz"
)

func (o FetchOptions) withDefaults() FetchOptions {
	if o.MaxSize <= 0 {
		o.MaxSize = DefaultLimits.MaxArchive
	}
	if o.DialTimeout <= 0 {
		o.DialTimeout = defaultDialTimeout
	}
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = defaultIdleTimeout
	}
	return o
}

// Download is an archive copied into a private temp dir.
type Download struct {
	// Dir is the private (0700) temp dir; Remove deletes it with everything in it.
	Dir string
	// Path is the archive inside Dir.
	Path string
	// Size and SHA256 (lower-case hex) of what was received.
	Size   int64
	SHA256 string
}

// Remove deletes the temp dir.
func (d *Download) Remove() error { return os.RemoveAll(d.Dir) }

// opener opens a source for reading; size is -1 when the server does not say.
type opener func(ctx context.Context, s *Source, o FetchOptions) (rc io.ReadCloser, size int64, err error)

func openerFor(k Kind) opener {
	switch k {
	case KindLocal:
		return openLocal
	case KindFTP:
		return openFTP
	case KindHTTPS:
		return openHTTPS
	}
	return nil
}

// Fetch copies the archive at s into a new private temp dir below o.Dir, computing its
// sha256 on the way. Local files are copied too: what is verified and unpacked is then a
// file nobody else can change in between.
func Fetch(ctx context.Context, s *Source, o FetchOptions) (*Download, error) {
	o = o.withDefaults()
	open := openerFor(s.Kind)
	if open == nil {
		return nil, fmt.Errorf("%w: %v", ErrSource, s)
	}
	dir, err := makePrivateDir(o.Dir)
	if err != nil {
		return nil, err
	}
	d := &Download{Dir: dir, Path: filepath.Join(dir, archiveName)}
	if err := fetchInto(ctx, open, s, o, d); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return d, nil
}

func fetchInto(ctx context.Context, open opener, s *Source, o FetchOptions, d *Download) (err error) {
	raw, size, err := open(ctx, s, o)
	if err != nil {
		return err
	}
	rc := &onceCloser{Reader: raw, close: raw.Close}
	defer func() {
		if cerr := rc.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("fetching %v: closing the transfer: %w", s, cerr)
		}
	}()
	if size > o.MaxSize {
		return fmt.Errorf("%w: %v is %s, more than the limit of %s", ErrTooLarge, s, humanBytes(size), humanBytes(o.MaxSize))
	}
	f, err := os.OpenFile(d.Path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("fetching %v: %w", s, err)
	}
	defer f.Close()

	// A cancelled context closes the transfer, which unblocks a read in progress.
	stop := context.AfterFunc(ctx, func() { rc.Close() })
	defer stop()

	h := sha256.New()
	p := newProgress(o.Progress, "fetching "+s.String(), size)
	limited := &io.LimitedReader{R: rc, N: o.MaxSize + 1}
	n, err := io.CopyBuffer(io.MultiWriter(f, h, p), limited, make([]byte, 1<<20))
	if err == nil && n > o.MaxSize {
		err = fmt.Errorf("%w: %v is larger than the limit of %s", ErrTooLarge, s, humanBytes(o.MaxSize))
	}
	if err == nil && size >= 0 && n != size {
		err = fmt.Errorf("%w: %v: the transfer ended after %d of %d bytes; try again", ErrUnreachable, s, n, size)
	}
	if err == nil {
		err = f.Close()
	}
	if err != nil {
		p.fail()
		if ctx.Err() != nil {
			return fmt.Errorf("fetching %v: %w", s, context.Cause(ctx))
		}
		return transferError(s, err)
	}
	p.done()
	d.Size, d.SHA256 = n, hex.EncodeToString(h.Sum(nil))
	return nil
}

// transferError classifies an error that happened while bytes were moving.
func transferError(s *Source, err error) error {
	for _, class := range []error{ErrTooLarge, ErrUnreachable, ErrNotFound, ErrAuth} {
		if errors.Is(err, class) {
			return err
		}
	}
	if isTimeout(err) {
		return fmt.Errorf("%w: %v stopped sending data (%v); check the network and try again", ErrUnreachable, s, err)
	}
	return fmt.Errorf("fetching %v: %w", s, err)
}

// onceCloser makes Close safe to call twice and from two goroutines (a cancelled
// context closes the transfer while the copy may still be reading).
type onceCloser struct {
	io.Reader
	once  sync.Once
	close func() error
	err   error
}

func (c *onceCloser) Close() error {
	c.once.Do(func() { c.err = c.close() })
	return c.err
}

// makePrivateDir makes a new temp dir below parent that only its owner can enter.
func makePrivateDir(parent string) (string, error) {
	if parent == "" {
		return "", errors.New("installpkg: no work dir given (FetchOptions.Dir)")
	}
	st, err := os.Stat(parent)
	if err != nil {
		return "", fmt.Errorf("install package work dir: %w", err)
	}
	if !st.IsDir() {
		return "", fmt.Errorf("install package work dir %s is not a directory", parent)
	}
	dir, err := os.MkdirTemp(parent, ".edgeadm-pkg-")
	if err != nil {
		return "", fmt.Errorf("install package work dir: %w", err)
	}
	// MkdirTemp makes it 0700 already; say so explicitly rather than rely on it.
	if err := os.Chmod(dir, 0o700); err != nil {
		os.Remove(dir)
		return "", fmt.Errorf("install package work dir: %w", err)
	}
	return dir, nil
}
