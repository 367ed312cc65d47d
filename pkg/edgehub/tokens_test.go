package edgehub

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	authv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
)

// The kubelet's TokenRequest for a pod's projected service-account volume
// is answered offline, also after a restart, with the token issued online
// for the same request; nothing else is.
func TestTokenRequestOffline(t *testing.T) {
	ca := newTestCA(t)
	f := newFakeAPIServer(t, ca)
	l := newLink(t, f.srv.Listener.Addr().String())
	data := filepath.Join(t.TempDir(), "data")
	h := startHub(t, ca, data, l.url())
	h.waitOnline(t, true)
	ctx := context.Background()
	req := func(pod string) *authv1.TokenRequest {
		return &authv1.TokenRequest{Spec: authv1.TokenRequestSpec{Audiences: []string{"https://kubernetes.default.svc"}, ExpirationSeconds: ptr.To[int64](3600),
			BoundObjectRef: &authv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: pod, UID: types.UID("uid-" + pod)}}}
	}
	online, err := h.nodeClient(t).CoreV1().ServiceAccounts("default").CreateToken(ctx, "default", req("p1"), metav1.CreateOptions{})
	must(t, err)
	if online.Status.Token == "" {
		t.Fatal("no token online")
	}
	fi, err := os.Stat(filepath.Join(data, "tokens", "tokens.json"))
	must(t, err)
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("token file mode %v, want 0600", fi.Mode().Perm())
	}

	h.stop(t)
	l.cut()
	h2 := startHub(t, ca, data, l.url())
	got, err := h2.nodeClient(t).CoreV1().ServiceAccounts("default").CreateToken(ctx, "default", req("p1"), metav1.CreateOptions{})
	must(t, err)
	if got.Status.Token != online.Status.Token {
		t.Fatalf("offline token %q, want the one issued online", got.Status.Token)
	}
	_, err = h2.nodeClient(t).CoreV1().ServiceAccounts("default").CreateToken(ctx, "default", req("p2"), metav1.CreateOptions{})
	wantUnavailable(t, err, "no valid token")
	_, err = h2.clientFor(t, h2.restConfig(t, nil, nil, "some-token")).CoreV1().ServiceAccounts("default").CreateToken(ctx, "default", req("p1"), metav1.CreateOptions{})
	wantUnavailable(t, err, "not sent")
}
