package token

import (
	"encoding/base64"
	"fmt"
	"regexp"
	"strings"
	"sync"

	"k8s.io/klog/v2"
)

var (
	// A bootstrap token anywhere in a text: keep the ID, drop the secret.
	tokenInText = regexp.MustCompile(`\b([a-z0-9]{6})\.[a-z0-9]{16}\b`)
	// The secret half as it travels in a Secret's JSON (base64 in "data",
	// plain in "stringData"), as client-go logs request and response bodies
	// from -v=8 on. Quotes may be escaped when the body is itself quoted.
	secretInJSON = regexp.MustCompile(`(\\?"token-secret\\?"\s*:\s*\\?")[^"\\]*(\\?")`)
	// A hex dump, as client-go logs a protobuf body: a secret in it may be
	// split across lines and columns, so the whole dump is dropped.
	hexDump = regexp.MustCompile(`(?m)^[0-9a-f]{8}  (?:[0-9a-f]{2} ){1,8}`)
)

// HexDumpHidden replaces a logged binary body.
const HexDumpHidden = "<binary body hidden: it may hold a bootstrap token; use JSON clients to see bodies>"

// LogFilter is a klog.LogFilter that removes bootstrap token secrets from
// every log call: any "<id>.<secret>" in a message or value, any
// "token-secret" field of a JSON body, and every secret registered with
// Register in its plain and base64 forms. Install it with InstallLogFilter.
type LogFilter struct {
	mu    sync.RWMutex
	known []string
}

var _ klog.LogFilter = (*LogFilter)(nil)

// DefaultLogFilter is the filter InstallLogFilter installs.
var DefaultLogFilter = &LogFilter{}

// InstallLogFilter makes klog pass every log call through DefaultLogFilter
// and returns the function that removes it again. klog's filter is process
// wide; install it before anything that may log a token runs.
func InstallLogFilter() (restore func()) {
	klog.SetLogFilter(DefaultLogFilter)
	return func() { klog.SetLogFilter(nil) }
}

// Register adds t's secret to the strings the filter always removes, in the
// forms it may take on the wire (plain, base64).
func (f *LogFilter) Register(t Token) {
	s := t.secretPart()
	if s == "" {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.known = append(f.known, s,
		base64.StdEncoding.EncodeToString([]byte(s)),
		base64.RawURLEncoding.EncodeToString([]byte(s)))
}

// Scrub returns s with every token secret it knows of replaced.
func (f *LogFilter) Scrub(s string) string {
	if hexDump.MatchString(s) {
		return HexDumpHidden
	}
	s = tokenInText.ReplaceAllString(s, "${1}."+Redacted)
	s = secretInJSON.ReplaceAllString(s, "${1}"+Redacted+"${2}")
	f.mu.RLock()
	defer f.mu.RUnlock()
	for _, k := range f.known {
		s = strings.ReplaceAll(s, k, Redacted)
	}
	return s
}

// scrubValue returns v, or a scrubbed string in its place when its printed
// form held a secret. Errors stay errors so that klog still shows them as such.
func (f *LogFilter) scrubValue(v any) any {
	switch x := v.(type) {
	case nil:
		return nil
	case Token:
		return x.String()
	case string:
		return f.Scrub(x)
	case []byte:
		return f.Scrub(string(x))
	case error:
		if s := x.Error(); f.Scrub(s) != s {
			return scrubbedError{f.Scrub(s)}
		}
		return x
	}
	s := fmt.Sprintf("%+v", v)
	if scrubbed := f.Scrub(s); scrubbed != s {
		return scrubbed
	}
	return v
}

type scrubbedError struct{ msg string }

func (e scrubbedError) Error() string { return e.msg }

// Filter implements klog.LogFilter for Info, Infoln and friends.
func (f *LogFilter) Filter(args []any) []any {
	out := make([]any, len(args))
	for i, a := range args {
		out[i] = f.scrubValue(a)
	}
	return out
}

// FilterF implements klog.LogFilter for Infof and friends.
func (f *LogFilter) FilterF(format string, args []any) (string, []any) {
	return f.Scrub(format), f.Filter(args)
}

// FilterS implements klog.LogFilter for InfoS, ErrorS and every logr call
// that goes through klog.
func (f *LogFilter) FilterS(msg string, keysAndValues []any) (string, []any) {
	return f.Scrub(msg), f.Filter(keysAndValues)
}
