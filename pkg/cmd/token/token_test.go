package token_test

import (
	"bytes"
	"strings"
	"testing"

	"github.com/edgeadm/edgeadm/pkg/cmd"
	"github.com/edgeadm/edgeadm/pkg/cmd/app"
	"github.com/edgeadm/edgeadm/pkg/cmd/exitcode"
)

func run(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := app.Run(cmd.IOStreams{In: strings.NewReader(""), Out: &out, ErrOut: &errOut}, args)
	return out.String(), errOut.String(), exitcode.Code(err)
}

// Bad flags are refused with exit 2 before any kubeconfig is read: the
// kubeconfig given here does not exist, and the error is about the flag.
func TestBadFlagsAreUsageErrorsBeforeTheCluster(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"create", "--ttl", "-1s"}, "--ttl"},
		{[]string{"create", "--ttl", "soon"}, "ttl"},
		{[]string{"create", "--groups", "system:masters"}, "system:bootstrappers:"},
		{[]string{"create", "--usages", "signing,flying"}, "usages"},
		{[]string{"create", "--usages", "signing", "--groups", "system:bootstrappers:edge"}, "authentication"},
		{[]string{"create", "--print-join-command", "--master-public-addr", "https://203.0.113.1:6443"}, "--master-public-addr"},
		{[]string{"create", "--print-join-command", "--master-public-addr", "kubernetes.default"}, "in-cluster name"},
		{[]string{"create", "--print-join-command", "--master-public-addr", "203.0.113.1:70000"}, "port"},
		{[]string{"create", "--master-public-addr", "203.0.113.1"}, "--print-join-command"},
		{[]string{"create", "--print-join-command", "--install-pkg-path", "/p", "--install-pkg-sha256", "xyz"}, "64 hexadecimal"},
		{[]string{"create", "extra-arg"}, "unknown command"},
		{[]string{"list", "-o", "xml"}, "xml"},
		{[]string{"delete"}, "requires at least 1 arg"},
		{[]string{"delete", "not-a-token"}, "argument 1"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			args := append([]string{"token", "--kubeconfig", "/nonexistent/kubeconfig"}, tc.args...)
			stdout, stderr, code := run(t, args...)
			if code != exitcode.Usage {
				t.Fatalf("exit %d, want %d; stderr %q", code, exitcode.Usage, stderr)
			}
			if stdout != "" {
				t.Errorf("stdout %q", stdout)
			}
			if !strings.Contains(stderr, tc.want) || strings.Contains(stderr, "/nonexistent/kubeconfig") {
				t.Errorf("stderr %q, want it to mention %q and not the kubeconfig", stderr, tc.want)
			}
		})
	}
}

// A mistyped token given to delete is not repeated in the error.
func TestDeleteDoesNotEchoAMalformedToken(t *testing.T) {
	secret := "0123456789abcdeX"
	_, stderr, code := run(t, "token", "--kubeconfig", "/nonexistent", "delete", "-v=10", "abcdef."+secret)
	if code != exitcode.Usage || strings.Contains(stderr, secret) {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
}
