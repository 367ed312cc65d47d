package addon

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

func TestCheckAccessListsDenied(t *testing.T) {
	c := fake.NewClientset()
	c.PrependReactor("create", "selfsubjectaccessreviews", func(a k8stesting.Action) (bool, runtime.Object, error) {
		r := a.(k8stesting.CreateAction).GetObject().(*authorizationv1.SelfSubjectAccessReview)
		r.Status.Allowed = r.Spec.ResourceAttributes.Resource != "clusterroles"
		return true, r, nil
	})
	perms := []Permission{
		{Verb: "create", Resource: "configmaps", Namespace: "kube-system"},
		{Verb: "create", Group: "rbac.authorization.k8s.io", Resource: "clusterroles"},
		{Verb: "create", Group: "rbac.authorization.k8s.io", Resource: "clusterroles"},
	}
	err := CheckAccess(context.Background(), c, perms)
	if !errors.Is(err, ErrForbidden) || !strings.Contains(err.Error(), "create clusterroles.rbac.authorization.k8s.io cluster-wide") ||
		strings.Contains(err.Error(), "configmaps") || !strings.Contains(err.Error(), "nothing was changed") {
		t.Fatalf("err = %v", err)
	}
	if n := len(c.Actions()); n != 2 {
		t.Errorf("%d reviews for 2 distinct permissions", n)
	}
}

func newKeyCert(t *testing.T) (*ecdsa.PrivateKey, *x509.Certificate) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "ca"},
		NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return key, cert
}

func TestCheckCAKey(t *testing.T) {
	key, ca := newKeyCert(t)
	other, _ := newKeyCert(t)
	dir := t.TempDir()
	write := func(name string, k *ecdsa.PrivateKey) string {
		der, _ := x509.MarshalECPrivateKey(k)
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	if err := CheckCAKey(write("good.key", key), ca); err != nil {
		t.Errorf("matching key: %v", err)
	}
	if err := CheckCAKey(write("other.key", other), ca); err == nil || !strings.Contains(err.Error(), "does not match") {
		t.Errorf("foreign key: %v", err)
	}
	if err := CheckCAKey(filepath.Join(dir, "missing.key"), ca); err == nil {
		t.Error("missing key accepted")
	}
}
