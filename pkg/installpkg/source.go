package installpkg

import (
	"fmt"
	"net"
	"net/url"
	"path"
	"path/filepath"
	"strconv"
	"strings"
)

// PasswordEnv is where the FTP password comes from when the URL carries none. Prefer it
// to a password in the URL, which lands in shell history and the process list.
const PasswordEnv = "EDGEADM_FTP_PASSWORD"

// AcceptedForms is what every source error lists.
const AcceptedForms = "a local file (/path/to/kube-linux-<arch>-v<k8s>.tar.gz or file:///path), " +
	"ftp://[user@]host[:port]/path (password from $" + PasswordEnv + "), or https://host[:port]/path"

// Kind is where an install package comes from.
type Kind int

const (
	KindLocal Kind = iota + 1
	KindFTP
	KindHTTPS
)

func (k Kind) String() string {
	switch k {
	case KindLocal:
		return "local"
	case KindFTP:
		return "ftp"
	case KindHTTPS:
		return "https"
	}
	return "unknown"
}

// secret holds a password. It prints as a placeholder whatever verb formats it, so a
// Source logged with %v, %+v or %#v never shows the password.
type secret string

func (secret) String() string   { return "REDACTED" }
func (secret) GoString() string { return `"REDACTED"` }

// Source is a parsed --install-pkg-path. Its String is safe to print: the password and an
// https query (often a signature) are redacted.
type Source struct {
	Kind Kind
	// Path: the local file (KindLocal) or the path on the FTP server, relative to the
	// login directory unless it starts with "/" (written %2F in the URL, as curl does).
	Path string
	// Host is host:port (FTP: default port 21; https: as given).
	Host string
	// User is the FTP login ("anonymous" when the URL names none).
	User string

	password secret
	// passwordFrom: "url", the environment variable's name, or "" (anonymous).
	passwordFrom string
	// url: the https URL to request (it may carry a query), never printed as is.
	url *url.URL
}

// ParseSource parses an --install-pkg-path value. getenv supplies $EDGEADM_FTP_PASSWORD
// (os.Getenv in production; nil means no environment). Only the forms in AcceptedForms
// parse; plain http:// is refused, because nothing would protect the archive in transit
// and its sha256 pin would be the only defence.
func ParseSource(raw string, getenv func(string) string) (*Source, error) {
	if getenv == nil {
		getenv = func(string) string { return "" }
	}
	if strings.TrimSpace(raw) == "" {
		return nil, fmt.Errorf("%w: the install package path is empty; give %s", ErrSource, AcceptedForms)
	}
	if strings.ContainsAny(raw, "\x00\r\n") {
		return nil, fmt.Errorf("%w: the install package path contains a control character; give %s", ErrSource, AcceptedForms)
	}
	scheme, rest, isURL := splitScheme(raw)
	if !isURL {
		return &Source{Kind: KindLocal, Path: filepath.Clean(raw)}, nil
	}
	if !strings.HasPrefix(rest, "//") {
		return nil, fmt.Errorf("%w: %q is not a URL of the form %s://host/path; accepted: %s",
			ErrSource, redactRaw(raw), scheme, AcceptedForms)
	}
	switch scheme {
	case "ftp":
		return parseFTP(raw, getenv)
	case "https":
		return parseHTTPS(raw)
	case "file":
		return parseFile(raw)
	case "http":
		return nil, fmt.Errorf("%w: plain http:// is refused (nothing protects the archive in transit); "+
			"use https:// or ftp:// with --install-pkg-sha256; accepted: %s", ErrSource, AcceptedForms)
	}
	return nil, fmt.Errorf("%w: URL scheme %q is not supported; accepted: %s", ErrSource, scheme, AcceptedForms)
}

// splitScheme reports whether raw starts with a URL scheme ("name:"), and returns the
// scheme in lower case. A relative path such as "pkgs/a:b.tar.gz" has no scheme: a scheme
// is letters, digits, "+", "-" and "." starting with a letter, and is followed by "://"
// or is one of the schemes this package knows.
func splitScheme(raw string) (scheme, rest string, ok bool) {
	i := strings.IndexByte(raw, ':')
	if i <= 0 {
		return "", "", false
	}
	for j, c := range raw[:i] {
		letter := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
		if !letter && (j == 0 || !(c >= '0' && c <= '9' || c == '+' || c == '-' || c == '.')) {
			return "", "", false
		}
	}
	scheme, rest = strings.ToLower(raw[:i]), raw[i+1:]
	switch scheme {
	case "ftp", "ftps", "sftp", "http", "https", "file":
		return scheme, rest, true
	}
	return scheme, rest, strings.HasPrefix(rest, "//")
}

func parseFTP(raw string, getenv func(string) string) (*Source, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: cannot parse %s: %v; accepted: %s", ErrSource, redactRaw(raw), urlErrText(err), AcceptedForms)
	}
	s := &Source{Kind: KindFTP}
	if u.RawQuery != "" || u.Fragment != "" || strings.HasSuffix(raw, "?") || strings.HasSuffix(raw, "#") {
		return nil, fmt.Errorf("%w: %s: an ftp:// URL takes no ?query or #fragment", ErrSource, redactURL(u))
	}
	host, err := hostPort(u, "21")
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrSource, redactURL(u), err)
	}
	s.Host = host
	// RFC 1738: the path is relative to the login directory; %2F makes it absolute.
	p := strings.TrimPrefix(u.Path, "/")
	if p == "" || strings.HasSuffix(p, "/") {
		return nil, fmt.Errorf("%w: %s names no file; give ftp://[user@]host[:port]/path/to/kube-linux-<arch>-v<k8s>.tar.gz",
			ErrSource, redactURL(u))
	}
	if strings.ContainsAny(p, "\x00\r\n") {
		return nil, fmt.Errorf("%w: %s: the path contains a control character", ErrSource, redactURL(u))
	}
	s.Path = p
	if u.User == nil || u.User.Username() == "" {
		if u.User != nil {
			if _, set := u.User.Password(); set {
				return nil, fmt.Errorf("%w: %s has a password but no user; give ftp://user@host/path", ErrSource, redactURL(u))
			}
		}
		s.User, s.password = "anonymous", "anonymous"
	} else {
		s.User = u.User.Username()
		if pw, set := u.User.Password(); set {
			s.password, s.passwordFrom = secret(pw), "url"
		} else if pw := getenv(PasswordEnv); pw != "" {
			s.password, s.passwordFrom = secret(pw), PasswordEnv
		}
		if strings.ContainsAny(s.User+string(s.password), "\r\n") {
			return nil, fmt.Errorf("%w: %s: user or password contains a line break", ErrSource, redactURL(u))
		}
	}
	return s, nil
}

func parseHTTPS(raw string) (*Source, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: cannot parse %s: %v; accepted: %s", ErrSource, redactRaw(raw), urlErrText(err), AcceptedForms)
	}
	if u.User != nil {
		return nil, fmt.Errorf("%w: %s: credentials in an https:// URL are not supported", ErrSource, redactURL(u))
	}
	host, err := hostPort(u, "")
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrSource, redactURL(u), err)
	}
	if u.Path == "" || strings.HasSuffix(u.Path, "/") {
		return nil, fmt.Errorf("%w: %s names no file", ErrSource, redactURL(u))
	}
	u.Fragment, u.RawFragment = "", ""
	return &Source{Kind: KindHTTPS, Host: host, Path: u.Path, url: u}, nil
}

func parseFile(raw string) (*Source, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: cannot parse %q: %v; accepted: %s", ErrSource, raw, urlErrText(err), AcceptedForms)
	}
	if u.Host != "" && u.Host != "localhost" {
		return nil, fmt.Errorf("%w: %q: a file:// URL must name a local file (file:///path)", ErrSource, raw)
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" || !path.IsAbs(u.Path) {
		return nil, fmt.Errorf("%w: %q: want file:///absolute/path", ErrSource, raw)
	}
	return &Source{Kind: KindLocal, Path: filepath.Clean(u.Path)}, nil
}

// hostPort validates u's host and port; defPort is used when u names none ("" keeps it out).
func hostPort(u *url.URL, defPort string) (string, error) {
	h := u.Hostname()
	if h == "" {
		return "", fmt.Errorf("no host")
	}
	port := u.Port()
	if port != "" {
		n, err := strconv.Atoi(port)
		if err != nil || n < 1 || n > 65535 {
			return "", fmt.Errorf("port %q is not a number from 1 to 65535", port)
		}
	} else if strings.HasSuffix(u.Host, ":") {
		return "", fmt.Errorf("empty port")
	}
	if port == "" {
		if defPort == "" {
			return u.Host, nil
		}
		port = defPort
	}
	return net.JoinHostPort(h, port), nil
}

// String shows the source with secrets redacted: ftp://user@host:21/path (a password,
// from wherever, never appears), https://host/path?REDACTED.
func (s Source) String() string {
	switch s.Kind {
	case KindLocal:
		return s.Path
	case KindFTP:
		u := url.URL{Scheme: "ftp", Host: s.Host, Path: "/" + s.Path}
		if s.User != "anonymous" {
			u.User = url.User(s.User)
		}
		return u.String()
	case KindHTTPS:
		return redactURL(s.url)
	}
	return "<invalid source>"
}

// GoString keeps %#v as safe as %v. (String and GoString have value receivers so that
// they also format a Source value: fmt does not call methods of unexported fields.)
func (s Source) GoString() string { return "installpkg.Source(" + strconv.Quote(s.String()) + ")" }

// HasPassword reports whether an FTP password was given, and where from ("url" or the
// environment variable's name), so callers can warn about a password in the URL.
func (s *Source) HasPassword() (bool, string) {
	return s.passwordFrom != "", s.passwordFrom
}

// redactURL prints u without its password and query.
func redactURL(u *url.URL) string {
	if u == nil {
		return "<nil>"
	}
	c := *u
	if c.User != nil {
		c.User = url.User(c.User.Username())
	}
	if c.RawQuery != "" || c.ForceQuery {
		c.RawQuery, c.ForceQuery = "REDACTED", false
	}
	c.Fragment, c.RawFragment = "", ""
	return c.String()
}

// redactRaw is for strings that did not parse: keep the scheme and host part's shape but
// drop anything between "//" and "@" and everything after "?".
func redactRaw(raw string) string {
	if i := strings.IndexAny(raw, "?#"); i >= 0 {
		raw = raw[:i] + "?REDACTED"
	}
	if i := strings.Index(raw, "//"); i >= 0 {
		if j := strings.LastIndex(raw[i+2:], "@"); j >= 0 {
			raw = raw[:i+2] + "REDACTED@" + raw[i+2+j+1:]
		}
	}
	return strconv.Quote(raw)
}

// urlErrText is a url.Parse error without the URL it quotes (which may hold a password):
// messages that quote a part of the URL are replaced by a generic one.
func urlErrText(err error) string {
	if ue, ok := err.(*url.Error); ok && !strings.ContainsAny(ue.Err.Error(), "\"'") {
		return ue.Err.Error()
	}
	return "malformed URL (check %-escapes and the port)"
}
