package installpkg

import (
	"context"
	"errors"
	"net"
	"os"
	"sync"
	"time"
)

// idleConn fails a Read or Write that waits longer than timeout: every call pushes the
// deadline out again, so a slow but moving transfer goes on and a stalled one ends.
// A cancelled context closes it.
type idleConn struct {
	net.Conn
	timeout time.Duration
	stop    func() bool
	once    sync.Once
}

func (c *idleConn) Read(b []byte) (int, error) {
	if err := c.Conn.SetReadDeadline(time.Now().Add(c.timeout)); err != nil {
		return 0, err
	}
	return c.Conn.Read(b)
}

func (c *idleConn) Write(b []byte) (int, error) {
	if err := c.Conn.SetWriteDeadline(time.Now().Add(c.timeout)); err != nil {
		return 0, err
	}
	return c.Conn.Write(b)
}

func (c *idleConn) Close() error {
	c.once.Do(func() { c.stop() })
	return c.Conn.Close()
}

// dialFunc dials with o.DialTimeout and wraps the connection in an idleConn tied to ctx.
func dialFunc(ctx context.Context, o FetchOptions) func(ctx2 context.Context, network, addr string) (net.Conn, error) {
	d := &net.Dialer{Timeout: o.DialTimeout}
	return func(ctx2 context.Context, network, addr string) (net.Conn, error) {
		if ctx2 == nil {
			ctx2 = ctx
		}
		c, err := d.DialContext(ctx2, network, addr)
		if err != nil {
			return nil, err
		}
		ic := &idleConn{Conn: c, timeout: o.IdleTimeout}
		ic.stop = context.AfterFunc(ctx, func() { c.Close() })
		return ic, nil
	}
}

// isTimeout reports a deadline that passed (an idle connection, a dial that timed out).
func isTimeout(err error) bool {
	if errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// isDialError reports an error of establishing a connection (refused, no route, DNS).
func isDialError(err error) bool {
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Op == "dial" {
		return true
	}
	var de *net.DNSError
	return errors.As(err, &de)
}
