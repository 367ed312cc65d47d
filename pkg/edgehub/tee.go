package edgehub

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
)

// errBodyTooLarge: an answer above the recording limit is relayed but not
// recorded.
var errBodyTooLarge = errors.New("answer too large to record")

// bodyCopy keeps what passed to the client, for the recorder, up to limit
// bytes; past it the copy is given up (over).
type bodyCopy struct {
	buf   []byte
	limit int
	over  bool
}

func newBodyCopy(contentLength int64, limit int) *bodyCopy {
	b := &bodyCopy{limit: limit}
	switch {
	case contentLength > int64(limit):
		b.over = true
	case contentLength > 0:
		b.buf = make([]byte, 0, contentLength)
	}
	return b
}

func (b *bodyCopy) add(p []byte) {
	if b.over {
		return
	}
	if len(b.buf)+len(p) > b.limit {
		b.over, b.buf = true, nil
		return
	}
	b.buf = append(b.buf, p...)
}

// decodeBody undoes the answer's Content-Encoding (edgehub asks upstream
// for gzip only, and only when its client accepts it) within limit bytes.
func decodeBody(body []byte, encoding string, limit int) ([]byte, error) {
	switch strings.ToLower(strings.TrimSpace(encoding)) {
	case "", "identity":
		return body, nil
	case "gzip":
		zr, err := gzip.NewReader(bytes.NewReader(body))
		if err != nil {
			return nil, fmt.Errorf("inflating a gzip answer: %w", err)
		}
		out, err := io.ReadAll(io.LimitReader(zr, int64(limit)+1))
		if err != nil {
			return nil, fmt.Errorf("inflating a gzip answer: %w", err)
		}
		if len(out) > limit {
			return nil, errBodyTooLarge
		}
		return out, nil
	default:
		return nil, fmt.Errorf("an answer with Content-Encoding %q, which edgehub did not ask for", encoding)
	}
}

// headReader reads body undoing its Content-Encoding as far as it is read.
func headReader(body []byte, encoding string) (io.Reader, error) {
	switch strings.ToLower(strings.TrimSpace(encoding)) {
	case "", "identity":
		return bytes.NewReader(body), nil
	case "gzip":
		return gzip.NewReader(bytes.NewReader(body))
	default:
		return nil, fmt.Errorf("an answer with Content-Encoding %q, which edgehub did not ask for", encoding)
	}
}

// acceptsGzip tells whether a client's Accept-Encoding admits gzip.
func acceptsGzip(acceptEncoding string) bool {
	for _, part := range strings.Split(acceptEncoding, ",") {
		coding, params, _ := strings.Cut(part, ";")
		if !strings.EqualFold(strings.TrimSpace(coding), "gzip") {
			continue
		}
		q := strings.ReplaceAll(strings.ToLower(params), " ", "")
		return q != "q=0" && q != "q=0.0" && q != "q=0.00" && q != "q=0.000"
	}
	return false
}

// relayBufs are the read buffers of relayed answers.
var relayBufs = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}
