package edgehub

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// tokenCache keeps the last service-account token the apiserver issued to
// the node for each distinct TokenRequest, so that offline, after a reboot,
// the kubelet can still mount projected service-account volumes: the same
// request (same service account, audiences, lifetime, bound pod) gets the
// same answer again while the token is valid. Only the node's requests are
// kept; tokens live in one 0600 file in a 0700 folder and are never logged.
type tokenCache struct {
	path string
	now  func() time.Time

	mu      sync.Mutex
	entries map[string]tokenEntry
}

type tokenEntry struct {
	// Response is the TokenRequest the apiserver answered (JSON).
	Response []byte    `json:"response"`
	Expires  time.Time `json:"expires"`
}

// maxTokenRequestBody bounds what edgehub reads of a TokenRequest body.
const maxTokenRequestBody = 64 << 10

func openTokenCache(dir string) (*tokenCache, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("token cache folder: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, fmt.Errorf("token cache folder: %w", err)
	}
	t := &tokenCache{path: filepath.Join(dir, "tokens.json"), now: time.Now, entries: map[string]tokenEntry{}}
	b, err := os.ReadFile(t.path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return nil, fmt.Errorf("read token cache: %w", err)
	default:
		if err := json.Unmarshal(b, &t.entries); err != nil {
			// A damaged file only costs offline tokens; start empty.
			t.entries = map[string]tokenEntry{}
		}
	}
	return t, nil
}

// tokenKey names a TokenRequest by everything that makes its answer.
func tokenKey(namespace, name string, body []byte) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00", namespace, name)
	h.Write(body)
	return hex.EncodeToString(h.Sum(nil))
}

func (t *tokenCache) get(key string) ([]byte, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	e, ok := t.entries[key]
	if !ok || !t.now().Before(e.Expires) {
		return nil, false
	}
	return e.Response, true
}

// put records an apiserver answer (JSON TokenRequest) and drops expired ones.
func (t *tokenCache) put(key string, response []byte) error {
	var tr struct {
		Status struct {
			ExpirationTimestamp time.Time `json:"expirationTimestamp"`
		} `json:"status"`
	}
	if err := json.Unmarshal(response, &tr); err != nil {
		return fmt.Errorf("decode TokenRequest answer: %w", err)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	for k, e := range t.entries {
		if !now.Before(e.Expires) {
			delete(t.entries, k)
		}
	}
	t.entries[key] = tokenEntry{Response: response, Expires: tr.Status.ExpirationTimestamp}
	b, err := json.Marshal(t.entries)
	if err != nil {
		return err
	}
	return writeFileAtomic(t.path, b, 0o600)
}

// readBody takes a request body into memory (bounded) so it can be both
// hashed and forwarded.
func readBody(r *http.Request) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r.Body, maxTokenRequestBody+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxTokenRequestBody {
		return nil, fmt.Errorf("TokenRequest body larger than %d bytes", maxTokenRequestBody)
	}
	r.Body = io.NopCloser(bytes.NewReader(b))
	r.ContentLength = int64(len(b))
	return b, nil
}
