package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/edgeadm/edgeadm/pkg/installpkg"
	"github.com/edgeadm/edgeadm/pkg/installpkg/ftptest"
)

// bench measures what edgeadm join does with a package (fetch into a private dir with
// sha256, then unpack with every check) against the shell baseline an operator would use,
// `curl URL | sha256sum` then `tar xzf FILE`, on the same file: from a local file:// and,
// when a vsftpd test server can run here (root), over FTP on 127.0.0.1. It prints MB/s
// (10^6 bytes of archive per second, median of -n runs) and the ratio.
func bench(args []string) error {
	fs := flag.NewFlagSet("bench", flag.ExitOnError)
	runs := fs.Int("n", 3, "runs of each method (the median is reported)")
	fs.Parse(args)
	if fs.NArg() != 1 || *runs < 1 {
		usage()
	}
	for _, tool := range []string{"curl", "sha256sum", "tar"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("the baseline needs %s", tool)
		}
	}
	work, err := os.MkdirTemp("", "installpkg-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	file := filepath.Join(work, filepath.Base(fs.Arg(0)))
	if err := copyTo(fs.Arg(0), file); err != nil {
		return err
	}
	st, err := os.Stat(file)
	if err != nil {
		return err
	}
	arch, err := packageArch(file)
	if err != nil {
		return err
	}

	type row struct {
		source       string
		ours, theirs time.Duration
	}
	var rows []row
	// The two methods take turns, so that a change in the machine's load (it is shared)
	// falls on both alike.
	measure := func(source, raw string, env func(string) string, curlArgs []string) error {
		var ours, theirs []time.Duration
		for i := 0; i < *runs; i++ {
			d, err := timed(func() error { return openOnce(raw, env, arch, work) })
			if err != nil {
				return fmt.Errorf("edgeadm from %s: %w", source, err)
			}
			ours = append(ours, d)
			if d, err = timed(func() error { return baseline(curlArgs, file, work) }); err != nil {
				return fmt.Errorf("baseline from %s: %w", source, err)
			}
			theirs = append(theirs, d)
		}
		rows = append(rows, row{source: source, ours: median(ours), theirs: median(theirs)})
		return nil
	}
	if err := measure("file://", file, nil, []string{"file://" + file}); err != nil {
		return err
	}
	if err := ftptest.Available(); err != nil {
		fmt.Printf("(no FTP run: %v)\n", err)
	} else {
		srv, err := ftptest.Run(filepath.Join(work, "ftp"), ftptest.Config{})
		if err != nil {
			return err
		}
		defer srv.Stop()
		if err := copyTo(file, filepath.Join(srv.Root, "pkg.tar.gz")); err != nil {
			return err
		}
		os.Chmod(filepath.Join(srv.Root, "pkg.tar.gz"), 0o644)
		netrc := filepath.Join(work, "netrc")
		host := strings.Split(srv.Addr, ":")[0]
		line := fmt.Sprintf("machine %s login %s password %s\n", host, srv.User, srv.Password)
		if err := os.WriteFile(netrc, []byte(line), 0o600); err != nil {
			return err
		}
		env := func(k string) string {
			if k == installpkg.PasswordEnv {
				return srv.Password
			}
			return ""
		}
		if err := measure("ftp://127.0.0.1", srv.URL("pkg.tar.gz"), env,
			[]string{"--netrc-file", netrc, "ftp://" + srv.Addr + "/pkg.tar.gz"}); err != nil {
			return err
		}
	}

	mb := float64(st.Size()) / 1e6
	fmt.Printf("package %s: %.1f MB, %s; median of %d runs; load average %s\n", filepath.Base(file), mb, arch, *runs, loadavg())
	fmt.Printf("%-16s %-34s %-34s %s\n", "source", "edgeadm (fetch+sha256+unpack+verify)", "curl | sha256sum; tar xzf", "ratio")
	for _, r := range rows {
		fmt.Printf("%-16s %6.2f s %8.1f MB/s %16s %6.2f s %8.1f MB/s %16s %.2f\n", r.source,
			r.ours.Seconds(), mb/r.ours.Seconds(), "", r.theirs.Seconds(), mb/r.theirs.Seconds(), "",
			r.theirs.Seconds()/r.ours.Seconds())
	}
	fmt.Println("ratio: edgeadm's throughput over the baseline's (1.00: as fast; below: slower)")
	return nil
}

func openOnce(raw string, env func(string) string, arch, work string) error {
	src, err := installpkg.ParseSource(raw, env)
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp(work, "open-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	p, err := installpkg.Open(context.Background(), installpkg.Options{Source: src, Dir: dir, HostArch: arch})
	if err != nil {
		return err
	}
	return p.Close()
}

// baseline: curl ARGS | sha256sum, then tar xzf FILE into a fresh dir.
func baseline(curlArgs []string, file, work string) error {
	dir, err := os.MkdirTemp(work, "tar-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	curl := exec.Command("curl", append([]string{"-sSf"}, curlArgs...)...)
	sum := exec.Command("sha256sum")
	pipe, err := curl.StdoutPipe()
	if err != nil {
		return err
	}
	sum.Stdin, sum.Stdout = pipe, io.Discard
	if err := sum.Start(); err != nil {
		return err
	}
	if err := curl.Run(); err != nil {
		return fmt.Errorf("curl: %w", err)
	}
	if err := sum.Wait(); err != nil {
		return err
	}
	if out, err := exec.Command("tar", "xzf", file, "-C", dir).CombinedOutput(); err != nil {
		return fmt.Errorf("tar: %v: %s", err, out)
	}
	return nil
}

func timed(f func() error) (time.Duration, error) {
	start := time.Now()
	err := f()
	return time.Since(start), err
}

func median(ds []time.Duration) time.Duration {
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	return ds[len(ds)/2]
}

// packageArch reads the arch from the package's manifest (the bench opens it as a host
// of that arch would).
func packageArch(file string) (string, error) {
	f, err := os.Open(file)
	if err != nil {
		return "", err
	}
	defer f.Close()
	m, err := installpkg.ReadManifest(f)
	if err != nil {
		return "", err
	}
	return m.Arch, nil
}

func copyTo(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(to)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	return strings.Join(f[:3], " ")
}
