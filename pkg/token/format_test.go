package token

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"os/exec"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	bootstraptokenv1 "k8s.io/kubernetes/cmd/kubeadm/app/apis/bootstraptoken/v1"
)

func TestParseAddress(t *testing.T) {
	for in, want := range map[string]string{
		"203.0.113.10":        "203.0.113.10",
		"203.0.113.10:6443":   "203.0.113.10:6443",
		"Edge.Example.com":    "edge.example.com",
		"edge.example.com.:1": "edge.example.com:1",
		"[2001:db8::1]:443":   "[2001:db8::1]:443",
		"[2001:db8::1]":       "2001:db8::1",
		"2001:db8::1":         "2001:db8::1",
		"localhost:6443":      "localhost:6443",
	} {
		a, err := ParseAddress(in)
		if err != nil || a.String() != want {
			t.Errorf("ParseAddress(%q) = %q, %v; want %q", in, a, err, want)
		}
	}
	for _, in := range []string{
		"", "https://203.0.113.10:6443", "203.0.113.10/x", "203.0.113.10:0", "203.0.113.10:65536", "203.0.113.10:x",
		"0.0.0.0:6443", "[::]:6443", "kubernetes", "kubernetes.default:6443", "kubernetes.default.svc.cluster.local",
		"KUBERNETES.DEFAULT", "under_score.example.com", "a b", "2001:db8::1:6443x",
	} {
		if a, err := ParseAddress(in); err == nil {
			t.Errorf("ParseAddress(%q) = %v, want an error", in, a)
		}
	}
}

func TestJoinCommandQuotesForTheShell(t *testing.T) {
	tok := mustParse(t, testToken)
	j := JoinCommand{
		Address:          Address{Host: "2001:db8::1", Port: 6443},
		Token:            tok,
		CACertHashes:     []string{"sha256:aa", "sha256:bb"},
		InstallPkgPath:   "ftp://host/it's $HOME/*.tar.gz",
		InstallPkgSHA256: "sha256:" + strings.Repeat("c", 64),
	}
	got := j.Reveal()
	want := `edgeadm join '[2001:db8::1]:6443' --token ` + testToken +
		` --discovery-token-ca-cert-hash sha256:aa --discovery-token-ca-cert-hash sha256:bb` +
		` --install-pkg-path 'ftp://host/it'\''s $HOME/*.tar.gz' --install-pkg-sha256 sha256:` + strings.Repeat("c", 64)
	if got != want {
		t.Fatalf("\n got %s\nwant %s", got, want)
	}
	if strings.Contains(got, "\n") {
		t.Fatal("more than one line")
	}
	// A shell splits it back into exactly the intended words.
	if sh, err := exec.LookPath("sh"); err == nil {
		out, err := exec.Command(sh, "-c", `for a in `+strings.TrimPrefix(got, "edgeadm ")+`; do printf '%s\n' "$a"; done`).Output()
		if err != nil {
			t.Fatal(err)
		}
		words := strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
		if words[1] != "[2001:db8::1]:6443" || words[9] != "ftp://host/it's $HOME/*.tar.gz" {
			t.Fatalf("the shell read %q", words)
		}
	}
	if s := j.String(); strings.Contains(s, "0123456789abcdef") || !strings.Contains(s, "abcdef."+Redacted) {
		t.Fatalf("String = %s", s)
	}
}

func TestCAHashIsKubeadmsSPKIPin(t *testing.T) {
	a, b := newTestCA(t, "a"), newTestCA(t, "b")
	sum := sha256.Sum256(a.cert.RawSubjectPublicKeyInfo)
	want := "sha256:" + hex.EncodeToString(sum[:])
	got, err := Hashes(a.pem)
	if err != nil || len(got) != 1 || got[0] != want || a.pin != want {
		t.Fatalf("Hashes = %v, %v; want %s", got, err, want)
	}
	bundle := append(append([]byte{}, a.pem...), b.pem...)
	if got, _ := Hashes(bundle); len(got) != 2 {
		t.Fatalf("bundle: %v", got)
	}
	if _, err := Hashes([]byte("not pem")); err == nil {
		t.Fatal("no error for garbage")
	}
}

func TestCAPins(t *testing.T) {
	a, b := newTestCA(t, "a"), newTestCA(t, "b")
	src := func(name string, cas ...testCA) caSource {
		s := caSource{name: name}
		for _, ca := range cas {
			s.certs = append(s.certs, ca.cert)
		}
		return s
	}
	ci := "kube-public/cluster-info"
	for name, tc := range map[string]struct {
		sources []caSource
		want    string
		err     string
	}{
		"file only":                 {sources: []caSource{src("file", a)}, want: a.pin},
		"first present wins":        {sources: []caSource{{}, src("kubeconfig", a), src(ci, a)}, want: a.pin},
		"bundle narrowed to ci":     {sources: []caSource{src("kubeconfig", a, b), src(ci, b)}, want: b.pin},
		"file vs cluster-info":      {sources: []caSource{src("file", a), src("kubeconfig", a), src(ci, b)}, err: "is not the one in kube-public/cluster-info"},
		"file vs kubeconfig":        {sources: []caSource{src("file", a), src("kubeconfig", b), src(ci, a)}, err: "is not the one in kubeconfig"},
		"none":                      {sources: []caSource{{}, {}}, err: "pass --ca.cert"},
		"bundle in file, ci has a":  {sources: []caSource{src("file", a, b), src(ci, a)}, want: a.pin},
		"kubeconfig absent is fine": {sources: []caSource{src("file", b), {}, src(ci, b)}, want: b.pin},
	} {
		t.Run(name, func(t *testing.T) {
			pins, err := caPins(tc.sources...)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("got %v, %v; want error %q", pins, err, tc.err)
				}
				return
			}
			if err != nil || strings.Join(pins, ",") != tc.want {
				t.Fatalf("got %v, %v; want %s", pins, err, tc.want)
			}
		})
	}
}

func TestPrintTable(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	tok := mustParse(t, testToken).kubeadm()
	tokens := []Listed{
		{BootstrapToken: bootstraptokenv1.BootstrapToken{Token: tok, Expires: &metav1.Time{Time: now.Add(23 * time.Hour)},
			Usages: []string{"authentication", "signing"}, Description: "for\nedge", Groups: []string{"system:bootstrappers:kubeadm:default-node-token"}}},
		{BootstrapToken: bootstraptokenv1.BootstrapToken{Token: mustParse(t, "zzzzzz.0000000000000000").kubeadm()}},
		{BootstrapToken: bootstraptokenv1.BootstrapToken{Token: mustParse(t, "yyyyyy.0000000000000000").kubeadm(), Expires: &metav1.Time{Time: now.Add(-time.Hour)}}},
	}
	var buf bytes.Buffer
	if err := PrintTable(&buf, tokens, now); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	if len(lines) != 4 {
		t.Fatalf("%q", buf.String())
	}
	if f := strings.Fields(lines[0]); strings.Join(f, " ") != "TOKEN TTL EXPIRES USAGES DESCRIPTION EXTRA GROUPS" {
		t.Fatalf("header %q", lines[0])
	}
	if f := strings.Fields(lines[1]); strings.Join(f, " ") != testToken+" 23h 2026-01-03T02:04:05Z authentication,signing for edge system:bootstrappers:kubeadm:default-node-token" {
		t.Fatalf("row %q", lines[1])
	}
	if f := strings.Fields(lines[2]); strings.Join(f, " ") != "zzzzzz.0000000000000000 <forever> <never> <none> <none> <none>" {
		t.Fatalf("row %q", lines[2])
	}
	if !strings.Contains(lines[3], "<expired>") {
		t.Fatalf("row %q", lines[3])
	}
}
