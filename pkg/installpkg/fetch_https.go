package installpkg

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
)

const maxRedirects = 5

// openHTTPS GETs the archive over TLS verified by o.RootCAs (nil: the system roots).
// Redirects are followed only to https. Proxies come from $HTTPS_PROXY/$NO_PROXY.
// The body arrives as sent: no transparent decompression, so what is hashed is the file.
func openHTTPS(ctx context.Context, s *Source, o FetchOptions) (io.ReadCloser, int64, error) {
	tr := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           dialFunc(ctx, o),
		TLSClientConfig:       &tls.Config{RootCAs: o.RootCAs, MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout:   o.DialTimeout,
		ResponseHeaderTimeout: o.IdleTimeout,
		DisableCompression:    true,
		ForceAttemptHTTP2:     true,
	}
	client := &http.Client{
		Transport: tr,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= maxRedirects {
				return fmt.Errorf("more than %d redirects", maxRedirects)
			}
			if req.URL.Scheme != "https" {
				return fmt.Errorf("redirect to %s refused: only https is followed", redactURL(req.URL))
			}
			return nil
		},
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.url.String(), nil)
	if err != nil {
		return nil, 0, fmt.Errorf("%w: %v: %v", ErrSource, s, urlErrText(err))
	}
	req.Header.Set("User-Agent", "edgeadm")
	resp, err := client.Do(req)
	if err != nil {
		tr.CloseIdleConnections()
		return nil, 0, httpsError(ctx, s, err)
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		tr.CloseIdleConnections()
		switch resp.StatusCode {
		case http.StatusNotFound, http.StatusGone:
			return nil, 0, fmt.Errorf("%w: %v answered %s; check the URL", ErrNotFound, s, resp.Status)
		case http.StatusUnauthorized, http.StatusForbidden:
			return nil, 0, fmt.Errorf("%w: %v answered %s; the URL needs credentials this edgeadm does not send (use a pre-signed URL or ftp://)",
				ErrAuth, s, resp.Status)
		}
		return nil, 0, fmt.Errorf("fetching %v: the server answered %s", s, resp.Status)
	}
	return &httpsBody{ReadCloser: resp.Body, tr: tr}, resp.ContentLength, nil
}

type httpsBody struct {
	io.ReadCloser
	tr *http.Transport
}

func (b *httpsBody) Close() error {
	err := b.ReadCloser.Close()
	b.tr.CloseIdleConnections()
	return err
}

// httpsError classifies a client error. The *url.Error wrapper is dropped: it quotes the
// URL, query and all.
func httpsError(ctx context.Context, s *Source, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("fetching %v: %w", s, context.Cause(ctx))
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	var (
		verr *tls.CertificateVerificationError
		uerr x509.UnknownAuthorityError
		herr x509.HostnameError
		cerr x509.CertificateInvalidError
	)
	switch {
	case errors.As(err, &verr), errors.As(err, &uerr), errors.As(err, &herr), errors.As(err, &cerr):
		return fmt.Errorf("fetching %v: the server's TLS certificate is not trusted (%v); "+
			"it must be valid for %s and signed by a CA in the system's roots", s, err, s.Host)
	case isDialError(err):
		return fmt.Errorf("%w: cannot reach %s (%v); check the host and port", ErrUnreachable, s.Host, err)
	case isTimeout(err):
		return fmt.Errorf("%w: %s stopped answering (%v); check the network and try again", ErrUnreachable, s.Host, err)
	}
	return fmt.Errorf("fetching %v: %v", s, err)
}
