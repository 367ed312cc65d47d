package installpkg

import (
	"bufio"
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"
)

func TestFetchLocal(t *testing.T) {
	dir := t.TempDir()
	file := dir + "/pkg.tar.gz"
	os.WriteFile(file, []byte("hello"), 0o644)
	src, _ := ParseSource(file, nil)
	work := t.TempDir()
	d, err := Fetch(context.Background(), src, FetchOptions{Dir: work})
	if err != nil {
		t.Fatal(err)
	}
	// sha256 of "hello".
	if d.Size != 5 || d.SHA256 != "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824" {
		t.Errorf("download %+v", d)
	}
	if st, _ := os.Stat(d.Dir); st.Mode().Perm() != 0o700 {
		t.Errorf("temp dir mode %v", st.Mode().Perm())
	}
	if st, _ := os.Stat(d.Path); st.Mode().Perm() != 0o600 {
		t.Errorf("archive copy mode %v", st.Mode().Perm())
	}
	d.Remove()
	assertEmptyDir(t, work)

	for name, raw := range map[string]string{"missing": dir + "/nope.tar.gz", "random string": "random string"} {
		src, _ := ParseSource(raw, nil)
		_, err := Fetch(context.Background(), src, FetchOptions{Dir: work})
		wantErr(t, err, ErrNotFound, "no such file", "ftp://[user@]host[:port]/path")
		_ = name
	}
	src, _ = ParseSource(dir, nil)
	_, err = Fetch(context.Background(), src, FetchOptions{Dir: work})
	wantErr(t, err, ErrSource, "is a directory")
	assertEmptyDir(t, work)

	_, err = Fetch(context.Background(), src, FetchOptions{})
	if err == nil || !strings.Contains(err.Error(), "no work dir") {
		t.Errorf("no work dir: %v", err)
	}
}

func TestFetchHTTPS(t *testing.T) {
	archive := buildArchive(t, "amd64", nil)
	mux := http.NewServeMux()
	mux.HandleFunc("/kube.tar.gz", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Accept-Encoding") == "gzip" {
			t.Errorf("client asked for gzip transfer encoding")
		}
		w.Header().Set("Content-Type", "application/gzip")
		w.Write(archive)
	})
	mux.HandleFunc("/forbidden", func(w http.ResponseWriter, r *http.Request) { http.Error(w, "no", http.StatusForbidden) })
	mux.HandleFunc("/to-http", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "http://127.0.0.1:1/kube.tar.gz", http.StatusFound)
	})
	mux.HandleFunc("/to-https", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/kube.tar.gz", http.StatusFound)
	})
	mux.HandleFunc("/short", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "1000")
		w.Write([]byte("only a few bytes"))
	})
	srv := httptest.NewUnstartedServer(mux)
	srv.Listener.Close()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv.Listener = l
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the untrusted-certificate case
	srv.StartTLS()
	t.Cleanup(srv.Close)
	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())
	base := srv.URL

	open := func(raw string, o Options) (*Package, error) {
		t.Helper()
		src, err := ParseSource(raw, nil)
		if err != nil {
			t.Fatal(err)
		}
		o.Source, o.Dir, o.HostArch = src, t.TempDir(), "amd64"
		if o.RootCAs == nil {
			o.RootCAs = pool
		}
		p, err := Open(context.Background(), o)
		if err != nil {
			assertEmptyDir(t, o.Dir)
			return nil, err
		}
		t.Cleanup(func() { p.Close() })
		return p, nil
	}
	p, err := open(base+"/kube.tar.gz?sig=secret", Options{})
	if err != nil {
		t.Fatal(err)
	}
	if p.Source != base+"/kube.tar.gz?REDACTED" {
		t.Errorf("source %q", p.Source)
	}
	if _, err := open(base+"/to-https", Options{}); err != nil {
		t.Errorf("https redirect: %v", err)
	}
	_, err = open(base+"/missing.tar.gz?sig=secret", Options{})
	wantErr(t, err, ErrNotFound, "404", "?REDACTED")
	if strings.Contains(err.Error(), "secret") {
		t.Errorf("error shows the query: %v", err)
	}
	_, err = open(base+"/forbidden", Options{})
	wantErr(t, err, ErrAuth, "403")
	_, err = open(base+"/to-http?sig=secret", Options{})
	wantErr(t, err, nil, "redirect to http://127.0.0.1:1/kube.tar.gz refused")
	if strings.Contains(err.Error(), "secret") {
		t.Errorf("error shows the query: %v", err)
	}
	_, err = open(base+"/short", Options{})
	wantErr(t, err, nil, "fetching")
	_, err = open(base+"/kube.tar.gz?sig=secret", Options{RootCAs: x509.NewCertPool()})
	wantErr(t, err, nil, "TLS certificate is not trusted")
	if strings.Contains(err.Error(), "secret") {
		t.Errorf("error shows the query: %v", err)
	}
}

// fakeFTP serves a scripted FTP control connection on 127.0.0.1: replies maps a
// command verb to its reply line. A nil replies map accepts and never says a word.
func fakeFTP(t *testing.T, replies map[string]string) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() { close(done); l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				if replies == nil {
					<-done
					return
				}
				fmt.Fprint(c, "220 fake\r\n")
				r := bufio.NewReader(c)
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					verb, _, _ := strings.Cut(strings.TrimSpace(line), " ")
					reply, ok := replies[verb]
					if !ok {
						reply = "502 not implemented"
					}
					fmt.Fprintf(c, "%s\r\n", reply)
				}
			}()
		}
	}()
	return l.Addr().String()
}

func fetchFTP(t *testing.T, raw string, env func(string) string, o FetchOptions) error {
	t.Helper()
	src, err := ParseSource(raw, env)
	if err != nil {
		t.Fatal(err)
	}
	o.Dir = t.TempDir()
	d, err := Fetch(context.Background(), src, o)
	if err == nil {
		d.Remove()
		t.Fatal("fetch succeeded")
	}
	assertEmptyDir(t, o.Dir)
	return err
}

func TestFetchFTPErrors(t *testing.T) {
	const pw = "n0t-the-Password"
	env := func(string) string { return pw }
	login := map[string]string{"USER": "331 password please", "PASS": "230 in", "FEAT": "211 end",
		"TYPE": "200 ok", "OPTS": "200 ok", "QUIT": "221 bye"}

	wrong := map[string]string{"USER": "331 password please", "PASS": "530 Login incorrect.", "QUIT": "221 bye"}
	err := fetchFTP(t, "ftp://edge@"+fakeFTP(t, wrong)+"/kube.tar.gz", env, FetchOptions{})
	wantErr(t, err, ErrAuth, "530 Login incorrect.", `user "edge"`, PasswordEnv)
	if strings.Contains(err.Error(), pw) {
		t.Errorf("error shows the password: %v", err)
	}
	err = fetchFTP(t, "ftp://edge@"+fakeFTP(t, wrong)+"/kube.tar.gz", nil, FetchOptions{})
	wantErr(t, err, ErrAuth, "no password was given")
	err = fetchFTP(t, "ftp://"+fakeFTP(t, wrong)+"/kube.tar.gz", nil, FetchOptions{})
	wantErr(t, err, ErrAuth, "does not allow anonymous logins")

	// A server that echoes the password gets it scrubbed.
	echo := map[string]string{"USER": "331 password please", "PASS": "530 bad password " + pw, "QUIT": "221 bye"}
	err = fetchFTP(t, "ftp://edge@"+fakeFTP(t, echo)+"/kube.tar.gz", env, FetchOptions{})
	if strings.Contains(err.Error(), pw) || !strings.Contains(err.Error(), "REDACTED") {
		t.Errorf("error %v", err)
	}

	missing := map[string]string{"SIZE": "550 Could not get file size."}
	for k, v := range login {
		missing[k] = v
	}
	err = fetchFTP(t, "ftp://edge@"+fakeFTP(t, missing)+"/pub/kube.tar.gz", env, FetchOptions{})
	wantErr(t, err, ErrNotFound, `has no file "pub/kube.tar.gz"`, "550 Could not get file size.")

	// Nothing listens: the port of a listener just closed.
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := l.Addr().String()
	l.Close()
	err = fetchFTP(t, "ftp://edge@"+addr+"/kube.tar.gz", env, FetchOptions{})
	wantErr(t, err, ErrUnreachable, "cannot reach FTP server "+addr, "refused")

	// A server that accepts and then says nothing: bounded by the idle timeout.
	start := time.Now()
	err = fetchFTP(t, "ftp://edge@"+fakeFTP(t, nil)+"/kube.tar.gz", env, FetchOptions{IdleTimeout: 300 * time.Millisecond})
	wantErr(t, err, ErrUnreachable, "stopped answering")
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("idle timeout took %v", d)
	}
}

func TestFetchCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	addr := fakeFTP(t, nil)
	src, _ := ParseSource("ftp://edge@"+addr+"/kube.tar.gz", nil)
	dir := t.TempDir()
	errc := make(chan error, 1)
	go func() {
		_, err := Fetch(ctx, src, FetchOptions{Dir: dir})
		errc <- err
	}()
	cancel()
	select {
	case err := <-errc:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("error %v, want context.Canceled", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("cancelled fetch did not return")
	}
	assertEmptyDir(t, dir)
}

func TestProgress(t *testing.T) {
	var out bytes.Buffer
	now := time.Unix(1000, 0)
	p := newProgress(&out, "fetching x", 4<<20)
	p.now = func() time.Time { return now }
	p.start = now
	p.Write(make([]byte, 1<<20))
	if out.Len() != 0 {
		t.Errorf("progress written to a non-terminal: %q", out.String())
	}
	now = now.Add(2 * time.Second)
	p.Write(make([]byte, 3<<20))
	p.done()
	if got := out.String(); got != "fetching x: done, 4.0 MiB in 2s (2.0 MiB/s)\n" {
		t.Errorf("summary %q", got)
	}

	out.Reset()
	now = time.Unix(1000, 0)
	p = newProgress(&out, "fetching x", 4<<20)
	p.tty, p.now, p.start = true, func() time.Time { return now }, now
	for i := 0; i < 4; i++ {
		now = now.Add(200 * time.Millisecond)
		p.Write(make([]byte, 1<<20))
	}
	p.done()
	lines := strings.Split(out.String(), "\r\033[K")
	// Updates at 200 ms (first) and 800 ms (500 ms later); 400 and 600 ms are throttled.
	want := []string{"", "fetching x: 1.0 MiB / 4.0 MiB (25%), 5.0 MiB/s", "fetching x: 4.0 MiB / 4.0 MiB (100%), 5.0 MiB/s",
		"fetching x: done, 4.0 MiB in 800ms (5.0 MiB/s)\n"}
	if strings.Join(lines, "|") != strings.Join(want, "|") {
		t.Errorf("terminal output %q", lines)
	}
}
