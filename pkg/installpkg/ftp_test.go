package installpkg

import (
	"bytes"
	"context"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/edgeadm/edgeadm/pkg/installpkg/ftptest"
)

// TestFTPRealServer fetches packages from Debian's vsftpd on 127.0.0.1. It skips
// without root or vsftpd, and fails instead when EDGEADM_E2E=1.
func TestFTPRealServer(t *testing.T) {
	srv := ftptest.Start(t, ftptest.Config{})
	archive := buildArchive(t, "amd64", nil)
	if err := os.MkdirAll(filepath.Join(srv.Root, "pkgs"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(srv.Root, "pkgs", "kube.tar.gz"), archive, 0o644); err != nil {
		t.Fatal(err)
	}
	withPassword := func(pw string) func(string) string {
		return func(k string) string {
			if k == PasswordEnv {
				return pw
			}
			return ""
		}
	}
	open := func(raw string, env func(string) string) (*Package, string, error) {
		t.Helper()
		src, err := ParseSource(raw, env)
		if err != nil {
			t.Fatal(err)
		}
		dir := t.TempDir()
		var progress bytes.Buffer
		p, err := Open(context.Background(), Options{Source: src, Dir: dir, HostArch: "amd64", Progress: &progress})
		if err != nil {
			assertEmptyDir(t, dir)
			return nil, progress.String(), err
		}
		t.Cleanup(func() { p.Close() })
		return p, progress.String(), nil
	}

	t.Run("password from the environment", func(t *testing.T) {
		p, progress, err := open(srv.URL("pkgs/kube.tar.gz"), withPassword(srv.Password))
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Verify(); err != nil {
			t.Fatal(err)
		}
		if p.Size != int64(len(archive)) || p.Source != srv.URL("pkgs/kube.tar.gz") {
			t.Errorf("package %+v", p)
		}
		if strings.Contains(progress, srv.Password) || !strings.Contains(progress, "done, ") {
			t.Errorf("progress %q", progress)
		}
	})
	t.Run("password in the URL", func(t *testing.T) {
		u := "ftp://" + url.UserPassword(srv.User, srv.Password).String() + "@" + srv.Addr + "/pkgs/kube.tar.gz"
		if _, _, err := open(u, nil); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("wrong password", func(t *testing.T) {
		const wrong = "wrong-Passw0rd"
		_, progress, err := open(srv.URL("pkgs/kube.tar.gz"), withPassword(wrong))
		wantErr(t, err, ErrAuth, "530", "Login incorrect", `user "`+srv.User+`"`)
		for _, pw := range []string{wrong, srv.Password} {
			if strings.Contains(err.Error(), pw) || strings.Contains(progress, pw) {
				t.Errorf("a password shows: %v / %q", err, progress)
			}
		}
	})
	t.Run("missing file", func(t *testing.T) {
		_, _, err := open(srv.URL("pkgs/nope.tar.gz"), withPassword(srv.Password))
		wantErr(t, err, ErrNotFound, "550", `"pkgs/nope.tar.gz"`)
	})
	t.Run("pinned and tampered", func(t *testing.T) {
		p, _, err := open(srv.URL("pkgs/kube.tar.gz"), withPassword(srv.Password))
		if err != nil {
			t.Fatal(err)
		}
		tampered := flip(archive, len(archive)/2)
		os.WriteFile(filepath.Join(srv.Root, "pkgs", "tampered.tar.gz"), tampered, 0o644)
		src, _ := ParseSource(srv.URL("pkgs/tampered.tar.gz"), withPassword(srv.Password))
		dir := t.TempDir()
		_, err = Open(context.Background(), Options{Source: src, Dir: dir, HostArch: "amd64", SHA256: p.SHA256})
		wantErr(t, err, ErrChecksum, "nothing was unpacked")
		assertEmptyDir(t, dir)
	})
	if log := srv.Log(); strings.Contains(log, srv.Password) {
		t.Errorf("vsftpd's log shows the password")
	}
}
