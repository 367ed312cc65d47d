package installpkg

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/textproto"
	"strings"

	"github.com/jlaffaye/ftp"
)

// openFTP logs in, asks for the size (when the server answers SIZE) and starts the
// download in passive mode. Data connections go to the control connection's address,
// whatever address the server's PASV reply names.
func openFTP(ctx context.Context, s *Source, o FetchOptions) (io.ReadCloser, int64, error) {
	dial := dialFunc(ctx, o)
	c, err := ftp.Dial(s.Host,
		ftp.DialWithDialFunc(func(network, addr string) (net.Conn, error) { return dial(ctx, network, addr) }),
		ftp.DialWithShutTimeout(o.IdleTimeout))
	if err != nil {
		return nil, 0, ftpError(ctx, s, "connecting", err)
	}
	ok := false
	defer func() {
		if !ok {
			c.Quit()
		}
	}()
	if err := c.Login(s.User, string(s.password)); err != nil {
		return nil, 0, ftpError(ctx, s, "logging in", err)
	}
	size, err := c.FileSize(s.Path)
	if err != nil {
		if code(err) == ftp.StatusFileUnavailable {
			return nil, 0, ftpError(ctx, s, "asking for the size", err)
		}
		if ctx.Err() != nil || isTimeout(err) {
			return nil, 0, ftpError(ctx, s, "asking for the size", err)
		}
		size = -1 // SIZE is optional (RFC 3659); go on without a total.
	}
	r, err := c.Retr(s.Path)
	if err != nil {
		return nil, 0, ftpError(ctx, s, "starting the download", err)
	}
	ok = true
	return &ftpReader{r: r, c: c, s: s}, size, nil
}

type ftpReader struct {
	r *ftp.Response
	c *ftp.ServerConn
	s *Source
}

func (f *ftpReader) Read(b []byte) (int, error) { return f.r.Read(b) }

// Close ends the data connection, reads the server's verdict on the transfer (226), and
// logs out.
func (f *ftpReader) Close() error {
	err := f.r.Close()
	f.c.Quit()
	if err != nil {
		return ftpError(context.Background(), f.s, "finishing the download", err)
	}
	return nil
}

// code is the FTP reply code carried by err, or 0.
func code(err error) int {
	var te *textproto.Error
	if errors.As(err, &te) {
		return te.Code
	}
	return 0
}

// ftpError turns a client error into one that names the class, the redacted URL, the
// server's reply and the fix. Whatever the server said passes through scrub first.
func ftpError(ctx context.Context, s *Source, doing string, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("fetching %v: %s: %w", s, doing, context.Cause(ctx))
	}
	reply := scrub(s, replyText(err))
	switch c := code(err); {
	case c == ftp.StatusNotLoggedIn: // 530
		hint := "check the user in the URL and the password ($" + PasswordEnv + ")"
		if s.User == "anonymous" {
			hint = "the server does not allow anonymous logins: give ftp://user@host/path and set $" + PasswordEnv
		} else if s.passwordFrom == "" {
			hint = "no password was given: set $" + PasswordEnv
		}
		return fmt.Errorf("%w: FTP server %s refused the login of user %q (%s); %s", ErrAuth, s.Host, s.User, reply, hint)
	case c == ftp.StatusFileUnavailable: // 550
		return fmt.Errorf("%w: FTP server %s has no file %q (%s); check the path in %v", ErrNotFound, s.Host, s.Path, reply, s)
	case c != 0:
		return fmt.Errorf("fetching %v: %s: the FTP server answered %s", s, doing, reply)
	case isDialError(err):
		return fmt.Errorf("%w: cannot reach FTP server %s (%s); check the host and port, and that the network lets FTP through",
			ErrUnreachable, s.Host, reply)
	case isTimeout(err):
		return fmt.Errorf("%w: FTP server %s stopped answering while %s (%s); check the network, and that passive-mode data ports are open",
			ErrUnreachable, s.Host, doing, reply)
	}
	return fmt.Errorf("fetching %v: %s: %s", s, doing, reply)
}

// replyText is an FTP reply as the server sent it ("530 Login incorrect."), or the
// error's text.
func replyText(err error) string {
	var te *textproto.Error
	if errors.As(err, &te) {
		return fmt.Sprintf("%03d %s", te.Code, te.Msg)
	}
	return err.Error()
}

// scrub removes the password from text that came from elsewhere (a server reply), in
// case a server echoes it. Short passwords are left alone: replacing every "a" of a
// message would hide the message, and no server echoes a password a letter at a time.
func scrub(s *Source, text string) string {
	if pw := string(s.password); len(pw) >= 4 {
		text = strings.ReplaceAll(text, pw, "REDACTED")
	}
	return text
}
