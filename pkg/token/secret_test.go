package token

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"strings"
	"testing"

	"github.com/go-logr/logr"
	"k8s.io/klog/v2"
	"k8s.io/klog/v2/textlogger"
	"sigs.k8s.io/yaml"
)

const testToken = "abcdef.0123456789abcdef"

func mustParse(t *testing.T, s string) Token {
	t.Helper()
	tok, err := Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestTokenNeverPrintsItsSecret(t *testing.T) {
	tok := mustParse(t, testToken)
	type holder struct {
		Exported Token
		hidden   Token
		ptr      *Token
	}
	h := holder{Exported: tok, hidden: tok, ptr: &tok}
	j, _ := json.Marshal(h)
	y, _ := yaml.Marshal(h)
	txt, _ := tok.MarshalText()
	forms := map[string]string{
		"%v": fmt.Sprintf("%v", tok), "%s": fmt.Sprintf("%s", tok), "%q": fmt.Sprintf("%q", tok),
		"%+v": fmt.Sprintf("%+v", tok), "%#v": fmt.Sprintf("%#v", tok), "%x": fmt.Sprintf("%x", tok),
		"%d": fmt.Sprintf("%d", tok), "holder %+v": fmt.Sprintf("%+v", h), "holder %#v": fmt.Sprintf("%#v", h),
		"holder %v": fmt.Sprint(h), "json": string(j), "yaml": string(y), "text": string(txt),
		"logr": fmt.Sprint(tok.MarshalLog()), "error": fmt.Errorf("wrapped %v", tok).Error(),
	}
	for name, s := range forms {
		if strings.Contains(s, "0123456789abcdef") {
			t.Errorf("%s shows the secret: %s", name, s)
		}
	}
	if got := fmt.Sprint(tok); got != "abcdef."+Redacted {
		t.Errorf("String = %q", got)
	}
	if tok.Reveal() != testToken || tok.ID() != "abcdef" {
		t.Errorf("Reveal/ID = %q/%q", tok.Reveal(), tok.ID())
	}
}

func TestParseErrorsDoNotEchoInput(t *testing.T) {
	for _, in := range []string{"abcdef.0123456789abcdeX", "ABCDEF.0123456789abcdef", "abcdef0123456789abcdef", "", "abcdef.0123456789abcdef0"} {
		if _, err := Parse(in); err == nil {
			t.Errorf("Parse(%q) succeeded", in)
		} else if in != "" && strings.Contains(err.Error(), in) {
			t.Errorf("Parse error echoes the input: %v", err)
		}
		if _, err := ParseIDOrToken(in); err == nil {
			t.Errorf("ParseIDOrToken(%q) succeeded", in)
		} else if in != "" && strings.Contains(err.Error(), in) {
			t.Errorf("ParseIDOrToken error echoes the input: %v", err)
		}
	}
	for in, want := range map[string]string{"abcdef": "abcdef", testToken: "abcdef"} {
		if got, err := ParseIDOrToken(in); err != nil || got != want {
			t.Errorf("ParseIDOrToken(%q) = %q, %v", in, got, err)
		}
	}
}

func TestGenerate(t *testing.T) {
	a, err := Generate()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := Generate()
	if a.Reveal() == b.Reveal() {
		t.Fatal("two generated tokens are equal")
	}
	if _, err := Parse(a.Reveal()); err != nil {
		t.Fatalf("generated token does not parse: %v", err)
	}
}

func TestLogFilterScrubs(t *testing.T) {
	f := &LogFilter{}
	other := mustParse(t, "zyxwvu.ffffffffffffffff")
	f.Register(other)
	b64 := base64.StdEncoding.EncodeToString([]byte("0123456789abcdef"))
	in := []string{
		"token " + testToken + " here",
		`{"data":{"token-id":"YWJjZGVm","token-secret":"` + b64 + `"}}`,
		`"{\"token-secret\":\"` + b64 + `\"}"`,
		`stringData: {"token-secret": "0123456789abcdef"}`,
		"known " + base64.StdEncoding.EncodeToString([]byte("ffffffffffffffff")),
		"known raw ffffffffffffffff",
	}
	for _, s := range in {
		out := f.Scrub(s)
		for _, secret := range []string{"0123456789abcdef", b64, "ffffffffffffffff", base64.StdEncoding.EncodeToString([]byte("ffffffffffffffff"))} {
			if strings.Contains(out, secret) {
				t.Errorf("Scrub(%q) = %q still holds %q", s, out, secret)
			}
		}
	}
	dump := hex.Dump([]byte("\x0a\x0bprotobuf k8s\x00 token-secret\x12\x100123456789abcdef and more bytes"))
	if got := f.Scrub(dump); got != HexDumpHidden {
		t.Errorf("Scrub(hex dump) = %q", got)
	}
	if got := f.Scrub("token " + testToken); got != "token abcdef."+Redacted {
		t.Errorf("Scrub kept the ID wrongly: %q", got)
	}
	args := f.Filter([]any{testToken, []byte(testToken), errors.New("bad " + testToken), struct{ S string }{testToken}, 42, nil})
	for _, a := range args {
		if a != nil && strings.Contains(fmt.Sprint(a), "0123456789abcdef") {
			t.Errorf("Filter left %v", a)
		}
	}
	if args[4] != 42 {
		t.Errorf("Filter changed an innocent value: %v", args[4])
	}
	if _, ok := args[2].(error); !ok {
		t.Errorf("Filter turned an error into %T", args[2])
	}
}

// TestLogFilterInKlog checks the filter where it matters: every klog entry
// point, and logr through klog, at the highest verbosity, with the logger
// edgeadm's main installs.
func TestLogFilterInKlog(t *testing.T) {
	var buf bytes.Buffer
	logger := textlogger.NewLogger(textlogger.NewConfig(textlogger.Output(&buf), textlogger.Verbosity(10)))
	klog.SetLoggerWithOptions(logger, klog.WriteKlogBuffer(func(b []byte) { buf.Write(b) }))
	defer klog.ClearLogger()
	setVerbosity(t, "10")
	restore := InstallLogFilter()
	defer restore()

	klog.Info("info ", testToken)
	klog.Infof("infof %s", testToken)
	klog.Infoln("infoln", testToken)
	klog.InfoS("infos", "token", testToken, "body", []byte(`{"token-secret":"MDEyMzQ1Njc4OWFiY2RlZg=="}`))
	klog.V(9).Infof("v9 %v", testToken)
	klog.ErrorS(errors.New("e"), "errors", "t", testToken)
	var lr logr.Logger = klog.Background()
	lr.V(8).Info("logr", "token", testToken)
	klog.Flush()
	out := buf.String()
	if strings.Count(out, "abcdef."+Redacted) < 7 {
		t.Errorf("expected redacted tokens in every line, got:\n%s", out)
	}
	if strings.Contains(out, "0123456789abcdef") || strings.Contains(out, "MDEyMzQ1Njc4OWFiY2RlZg") {
		t.Fatalf("a secret reached the log:\n%s", out)
	}
}

// setVerbosity sets klog's -v for the test and puts it back to 0 after.
func setVerbosity(t *testing.T, v string) {
	t.Helper()
	fs := flag.NewFlagSet("klog", flag.ContinueOnError)
	klog.InitFlags(fs)
	if err := fs.Set("v", v); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = fs.Set("v", "0") })
}
