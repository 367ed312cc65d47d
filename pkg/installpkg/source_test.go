package installpkg

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestParseSource(t *testing.T) {
	env := func(pw string) func(string) string {
		return func(k string) string {
			if k == PasswordEnv {
				return pw
			}
			return ""
		}
	}
	tests := []struct {
		raw      string
		env      func(string) string
		kind     Kind
		host     string
		path     string
		user     string
		password string
		from     string
		str      string
	}{
		{raw: "/srv/pkgs/kube-linux-amd64-v1.37.1.tar.gz", kind: KindLocal, path: "/srv/pkgs/kube-linux-amd64-v1.37.1.tar.gz",
			str: "/srv/pkgs/kube-linux-amd64-v1.37.1.tar.gz"},
		{raw: "pkgs/../kube.tar.gz", kind: KindLocal, path: "kube.tar.gz", str: "kube.tar.gz"},
		{raw: "./a:b.tar.gz", kind: KindLocal, path: "a:b.tar.gz", str: "a:b.tar.gz"},
		{raw: "random string", kind: KindLocal, path: "random string", str: "random string"},
		{raw: "file:///srv/kube.tar.gz", kind: KindLocal, path: "/srv/kube.tar.gz", str: "/srv/kube.tar.gz"},
		{raw: "ftp://10.0.0.5/pub/kube.tar.gz", kind: KindFTP, host: "10.0.0.5:21", path: "pub/kube.tar.gz",
			user: "anonymous", password: "anonymous", str: "ftp://10.0.0.5:21/pub/kube.tar.gz"},
		{raw: "FTP://edge@files.example:2121/%2Fabs/kube.tar.gz", env: env("s3cret"), kind: KindFTP,
			host: "files.example:2121", path: "/abs/kube.tar.gz", user: "edge", password: "s3cret", from: PasswordEnv,
			str: "ftp://edge@files.example:2121//abs/kube.tar.gz"},
		{raw: "ftp://edge:p%40ss%3Aw0rd@[::1]:21/kube.tar.gz", env: env("ignored"), kind: KindFTP, host: "[::1]:21",
			path: "kube.tar.gz", user: "edge", password: "p@ss:w0rd", from: "url", str: "ftp://edge@[::1]:21/kube.tar.gz"},
		{raw: "ftp://edge@host/kube.tar.gz", kind: KindFTP, host: "host:21", path: "kube.tar.gz", user: "edge",
			str: "ftp://edge@host:21/kube.tar.gz"},
		{raw: "https://pkgs.example/v1.37.1/kube.tar.gz?X-Signature=abc#frag", kind: KindHTTPS, host: "pkgs.example",
			path: "/v1.37.1/kube.tar.gz", str: "https://pkgs.example/v1.37.1/kube.tar.gz?REDACTED"},
		{raw: "HTTPS://pkgs.example:8443/kube.tar.gz", kind: KindHTTPS, host: "pkgs.example:8443", path: "/kube.tar.gz",
			str: "https://pkgs.example:8443/kube.tar.gz"},
	}
	for _, tc := range tests {
		t.Run(tc.raw, func(t *testing.T) {
			s, err := ParseSource(tc.raw, tc.env)
			if err != nil {
				t.Fatal(err)
			}
			if s.Kind != tc.kind || s.Host != tc.host || s.Path != tc.path || s.User != tc.user ||
				string(s.password) != tc.password || s.passwordFrom != tc.from {
				t.Errorf("got kind=%v host=%q path=%q user=%q password=%q from=%q", s.Kind, s.Host, s.Path, s.User,
					string(s.password), s.passwordFrom)
			}
			if s.String() != tc.str {
				t.Errorf("String() = %q, want %q", s.String(), tc.str)
			}
		})
	}
}

func TestParseSourceErrors(t *testing.T) {
	tests := []struct{ raw, want string }{
		{"", "empty"},
		{"   ", "empty"},
		{"http://pkgs.example/kube.tar.gz", "plain http:// is refused"},
		{"HTTP://pkgs.example/kube.tar.gz", "plain http:// is refused"},
		{"gopher://pkgs.example/kube.tar.gz", `scheme "gopher" is not supported`},
		{"sftp://host/kube.tar.gz", `scheme "sftp" is not supported`},
		{"ftps://host/kube.tar.gz", `scheme "ftps" is not supported`},
		{"ftp:/host/kube.tar.gz", "is not a URL of the form ftp://host/path"},
		{"ftp:host/kube.tar.gz", "is not a URL of the form"},
		{"https:kube.tar.gz", "is not a URL of the form"},
		{"ftp:///kube.tar.gz", "no host"},
		{"ftp://host", "names no file"},
		{"ftp://host/", "names no file"},
		{"ftp://host/dir/", "names no file"},
		{"ftp://host:99999/kube.tar.gz", "port"},
		{"ftp://host:/kube.tar.gz", "empty port"},
		{"ftp://host/kube.tar.gz?x=1", "no ?query"},
		{"ftp://host/kube.tar.gz#x", "no ?query or #fragment"},
		{"ftp://:pw@host/kube.tar.gz", "password but no user"},
		{"https://user:pw@host/kube.tar.gz", "credentials in an https:// URL"},
		{"https://host/", "names no file"},
		{"file://otherhost/kube.tar.gz", "must name a local file"},
		{"file:///rel/../x?y", "want file:///absolute/path"},
		{"ftp://edge:pw@host/a\nb", "control character"},
	}
	for _, tc := range tests {
		t.Run(tc.raw, func(t *testing.T) {
			_, err := ParseSource(tc.raw, nil)
			if err == nil {
				t.Fatal("no error")
			}
			if !errors.Is(err, ErrSource) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q: want ErrSource mentioning %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "pw") && strings.Contains(tc.raw, ":pw@") {
				t.Errorf("error %q shows the password", err)
			}
		})
	}
}

// TestSourceNeverShowsPassword: no formatting verb shows the password, whether it came
// from the URL or the environment.
func TestSourceNeverShowsPassword(t *testing.T) {
	const pw = "Sup3rSecretPw"
	for _, raw := range []string{"ftp://edge:" + pw + "@host/kube.tar.gz", "ftp://edge@host/kube.tar.gz"} {
		s, err := ParseSource(raw, func(string) string { return pw })
		if err != nil {
			t.Fatal(err)
		}
		for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q"} {
			if out := fmt.Sprintf(verb, s); strings.Contains(out, pw) {
				t.Errorf("%s of the source shows the password: %s", verb, out)
			}
			if out := fmt.Sprintf(verb, *s); strings.Contains(out, pw) {
				t.Errorf("%s of the source value shows the password: %s", verb, out)
			}
		}
		if ok, from := s.HasPassword(); !ok || from == "" {
			t.Errorf("HasPassword() = %v, %q", ok, from)
		}
	}
	// Not even in the error about a URL that does not parse.
	_, err := ParseSource("ftp://edge:"+pw+"@host:xx/kube.tar.gz", nil)
	if err == nil || strings.Contains(err.Error(), pw) {
		t.Errorf("error %v", err)
	}
	_, err = ParseSource("ftp://edge:"+pw+"%zz@host/kube.tar.gz", nil)
	if err == nil || strings.Contains(err.Error(), pw) {
		t.Errorf("error %v", err)
	}
}

func TestNormalizeArch(t *testing.T) {
	for in, want := range map[string]string{"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64", "AARCH64": "arm64", "armv7l": "arm"} {
		if got, ok := NormalizeArch(in); !ok || got != want {
			t.Errorf("NormalizeArch(%q) = %q, %v; want %q", in, got, ok, want)
		}
	}
	if _, ok := NormalizeArch("z80"); ok {
		t.Error("z80 is known")
	}
	if a, m := HostArch(); a == "" || m == "" {
		t.Errorf("HostArch() = %q, %q", a, m)
	}
}
