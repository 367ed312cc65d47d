package testenv

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// dialInNetns opens a connection from inside the named network namespace, so the
// harness can probe what listens on the namespace's loopback (etcd, the
// controller-manager and scheduler health ports) without exposing it.
//
// The socket is made on an OS thread moved into the namespace for the duration of
// the dial; a socket stays in the namespace it was made in. The thread is moved
// back before it is released. Should that ever fail, the thread is parked for
// good rather than released, because a thread in the wrong namespace must never
// run other goroutines (and must not exit: children started from it with
// Pdeathsig would die with it).
func dialInNetns(ctx context.Context, ns, network, addr string) (net.Conn, error) {
	type result struct {
		conn net.Conn
		err  error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := os.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()))
		if err != nil {
			runtime.UnlockOSThread()
			ch <- result{err: fmt.Errorf("open own network namespace: %w", err)}
			return
		}
		defer orig.Close()
		target, err := os.Open(filepath.Join(netnsDir, ns))
		if err != nil {
			runtime.UnlockOSThread()
			ch <- result{err: fmt.Errorf("open network namespace %s: %w", ns, err)}
			return
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			ch <- result{err: fmt.Errorf("enter network namespace %s: %w", ns, err)}
			return
		}
		var d net.Dialer
		conn, dialErr := d.DialContext(ctx, network, addr)
		if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
			if conn != nil {
				conn.Close()
			}
			ch <- result{err: fmt.Errorf("return from network namespace %s: %w", ns, err)}
			select {} // keep this thread locked and out of use forever
		}
		runtime.UnlockOSThread()
		ch <- result{conn, dialErr}
	}()
	r := <-ch
	return r.conn, r.err
}

// netnsHTTPClient is an HTTP client whose connections start inside ns. It does
// not verify server certificates: it only probes health endpoints on the
// namespace's own loopback, which nothing else can reach.
func netnsHTTPClient(ns string) *http.Client {
	return &http.Client{
		Timeout: 2 * time.Second,
		Transport: &http.Transport{
			DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				return dialInNetns(ctx, ns, network, addr)
			},
			TLSClientConfig:   &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // loopback health probe, see above
			DisableKeepAlives: true,
		},
	}
}

// probeOK reports whether url answers 200 "ok"; the error says what it answered
// instead, for the message when the wait gives up.
func probeOK(ctx context.Context, c *http.Client, url string) (bool, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return false, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return false, fmt.Errorf("%s: %s: %s", url, resp.Status, strings.TrimSpace(string(body)))
	}
	return true, nil
}
