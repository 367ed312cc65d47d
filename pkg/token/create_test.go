package token

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clienttesting "k8s.io/client-go/testing"
	"k8s.io/cluster-bootstrap/token/jws"
	"k8s.io/utils/ptr"

	"github.com/edgeadm/edgeadm/pkg/state"
)

const fastSigner = 300 * time.Millisecond

func TestCreateValidatesBeforeTouchingTheCluster(t *testing.T) {
	for name, o := range map[string]CreateOptions{
		"negative ttl":          {TTL: -time.Second},
		"bad usage":             {Usages: []string{"signing", "flying"}},
		"empty usages":          {Usages: []string{}},
		"group without prefix":  {Groups: []string{"system:masters"}},
		"group bad chars":       {Groups: []string{"system:bootstrappers:UPPER"}},
		"groups without authn":  {Usages: []string{"signing"}, Groups: []string{"system:bootstrappers:x"}},
		"join without signing":  {PrintJoinCommand: true, Usages: []string{"authentication"}, MasterPublicAddr: "203.0.113.1"},
		"join without authn":    {PrintJoinCommand: true, Usages: []string{"signing"}, MasterPublicAddr: "203.0.113.1"},
		"addr url":              {PrintJoinCommand: true, MasterPublicAddr: "https://203.0.113.1:6443"},
		"addr bad port":         {PrintJoinCommand: true, MasterPublicAddr: "203.0.113.1:99999"},
		"addr in-cluster name":  {PrintJoinCommand: true, MasterPublicAddr: "kubernetes.default:6443"},
		"addr unspecified":      {PrintJoinCommand: true, MasterPublicAddr: "0.0.0.0"},
		"addr bad host":         {PrintJoinCommand: true, MasterPublicAddr: "bad_host!:6443"},
		"addr without join":     {MasterPublicAddr: "203.0.113.1"},
		"sha without path":      {PrintJoinCommand: true, MasterPublicAddr: "203.0.113.1", InstallPkgSHA256: strings.Repeat("a", 64)},
		"bad sha":               {PrintJoinCommand: true, MasterPublicAddr: "203.0.113.1", InstallPkgPath: "/p", InstallPkgSHA256: "abc"},
		"install path w/o join": {InstallPkgPath: "/p"},
	} {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t)
			f.client.Fake.ClearActions()
			_, err := Create(context.Background(), f.cluster(), o)
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("want a ValidationError, got %v", err)
			}
			if n := len(f.client.Actions()); n != 0 {
				t.Fatalf("validation sent %d requests: %v", n, f.client.Actions())
			}
		})
	}
}

func TestValidateDefaultsLikeKubeadm(t *testing.T) {
	o := CreateOptions{TTL: 24 * time.Hour}
	if err := o.Validate(); err != nil {
		t.Fatal(err)
	}
	if strings.Join(o.Usages, ",") != "signing,authentication" ||
		strings.Join(o.Groups, ",") != "system:bootstrappers:kubeadm:default-node-token" || o.SignerWait != DefaultSignerWait {
		t.Fatalf("defaults: %+v", o)
	}
	o = CreateOptions{Usages: []string{"signing"}}
	if err := o.Validate(); err != nil || len(o.Groups) != 0 {
		t.Fatalf("a signing-only token gets no default group: %v %v", o.Groups, err)
	}
}

func TestCreateNeedsClusterInfo(t *testing.T) {
	f := newFixture(t)
	_, err := Create(context.Background(), f.cluster(), CreateOptions{TTL: time.Hour, SignerWait: fastSigner})
	if !errors.Is(err, ErrNoClusterInfo) || !strings.Contains(err.Error(), "run edgeadm addon edge-apps first") {
		t.Fatalf("got %v", err)
	}
	if w := f.writes(); len(w) != 0 {
		t.Fatalf("wrote %v", w)
	}
}

func TestCreateNeedsAnAddressForTheJoinCommand(t *testing.T) {
	f := newFixture(t)
	_ = f.client.Tracker().Add(clusterInfo(t, f.ca))
	_, err := Create(context.Background(), f.cluster(), CreateOptions{TTL: time.Hour, PrintJoinCommand: true})
	if err == nil || !strings.Contains(err.Error(), "--master-public-addr") {
		t.Fatalf("got %v", err)
	}
	if w := f.writes(); len(w) != 0 {
		t.Fatalf("wrote %v", w)
	}
}

// signerReactor plays the controller-manager's bootstrapsigner: when a token
// Secret is created, it signs cluster-info for it.
func signerReactor(t *testing.T, f *fixture) {
	f.client.PrependReactor("create", "secrets", func(a clienttesting.Action) (bool, runtime.Object, error) {
		s := a.(clienttesting.CreateAction).GetObject().(*corev1.Secret)
		cm := f.configMap(t, "kube-public", "cluster-info").DeepCopy()
		sig, err := jws.ComputeDetachedSignature(cm.Data["kubeconfig"], string(s.Data["token-id"]), string(s.Data["token-secret"]))
		if err != nil {
			t.Error(err)
		}
		cm.Data["jws-kubeconfig-"+string(s.Data["token-id"])] = sig
		go func() { // as a controller would: after the Secret exists
			if err := f.client.Tracker().Update(corev1.SchemeGroupVersion.WithResource("configmaps"), cm, cm.Namespace); err != nil {
				t.Error(err)
			}
		}()
		return false, nil, nil
	})
}

func TestCreateWithSignerPrintsJoinCommand(t *testing.T) {
	f := newFixture(t)
	_ = f.client.Tracker().Add(clusterInfo(t, f.ca))
	_ = f.client.Tracker().Add(edgeadmRecord(t, "masterPublicAddr: 203.0.113.10:6443\n"))
	signerReactor(t, f)
	res, err := Create(context.Background(), f.cluster(), CreateOptions{
		TTL: time.Hour, PrintJoinCommand: true, CACertPath: f.ca.file(t), CACertPathExplicit: true,
		InstallPkgPath: "/opt/pkgs/kube linux.tar.gz", InstallPkgSHA256: strings.Repeat("ab", 32), SignerWait: 10 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.SignedByEdgeadm {
		t.Fatal("edgeadm signed although a signer runs")
	}
	want := "edgeadm join 203.0.113.10:6443 --token " + res.Token.Reveal() +
		" --discovery-token-ca-cert-hash " + f.ca.pin +
		" --install-pkg-path '/opt/pkgs/kube linux.tar.gz' --install-pkg-sha256 " + strings.Repeat("ab", 32)
	if got := res.Join.Reveal(); got != want {
		t.Fatalf("join command\n got %s\nwant %s", got, want)
	}
	if strings.Contains(res.Join.String(), res.Token.Reveal()) {
		t.Fatal("JoinCommand.String shows the token")
	}
	secrets := f.secrets(t)
	if len(secrets) != 1 {
		t.Fatalf("secrets: %v", secrets)
	}
	s := secrets[0]
	if s.Name != "bootstrap-token-"+res.Token.ID() || s.Type != "bootstrap.kubernetes.io/token" ||
		string(s.Data["usage-bootstrap-signing"]) != "true" || string(s.Data["usage-bootstrap-authentication"]) != "true" ||
		string(s.Data["auth-extra-groups"]) != "system:bootstrappers:kubeadm:default-node-token" || len(s.Data["expiration"]) == 0 {
		t.Fatalf("secret is not kubeadm's: %+v", s)
	}
	rec := f.configMap(t, state.Namespace, state.Name)
	for k := range rec.Data {
		if strings.HasPrefix(k, RecordKeyPrefix) {
			t.Fatalf("a signature was noted although edgeadm did not sign: %v", rec.Data)
		}
	}
}

func TestCreateWithoutSignerSignsAndDeleteUnsigns(t *testing.T) {
	f := newFixture(t)
	_ = f.client.Tracker().Add(clusterInfo(t, f.ca))
	before := f.configMap(t, "kube-public", "cluster-info").DeepCopy()
	res, err := Create(context.Background(), f.cluster(), CreateOptions{
		TTL: time.Hour, PrintJoinCommand: true, MasterPublicAddr: "edge.example.com:443", SignerWait: fastSigner,
	})
	if err != nil {
		t.Fatal(err)
	}
	if !res.SignedByEdgeadm || !strings.Contains(f.warn.String(), "edgeadm signed it") {
		t.Fatalf("signed=%v warn=%q", res.SignedByEdgeadm, f.warn.String())
	}
	if strings.Contains(f.warn.String(), res.Token.Reveal()) {
		t.Fatal("the warning shows the token")
	}
	id := res.Token.ID()
	cm := f.configMap(t, "kube-public", "cluster-info")
	sig := cm.Data["jws-kubeconfig-"+id]
	if !jws.DetachedTokenIsValid(sig, cm.Data["kubeconfig"], id, res.Token.secretPart()) {
		t.Fatalf("signature %q does not verify", sig)
	}
	if got := f.configMap(t, "kube-system", "edgeadm").Data[RecordKeyPrefix+"jws-kubeconfig-"+id]; got != sig {
		t.Fatalf("note = %q, want %q", got, sig)
	}
	if len(cm.Annotations) != 0 || len(cm.Labels) != 0 {
		t.Fatalf("cluster-info got metadata: %v %v", cm.Annotations, cm.Labels)
	}

	// Someone else adds a signature of their own: delete must leave it.
	cm = cm.DeepCopy()
	cm.Data["jws-kubeconfig-zzzzzz"] = "someone-else"
	_ = f.client.Tracker().Update(corev1.SchemeGroupVersion.WithResource("configmaps"), cm, cm.Namespace)

	del, err := Delete(context.Background(), f.cluster(), []string{res.Token.Reveal()}, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(del) != 1 || !del[0].Found || !del[0].SignatureRemoved {
		t.Fatalf("deleted: %+v", del)
	}
	after := f.configMap(t, "kube-public", "cluster-info")
	if _, ok := after.Data["jws-kubeconfig-"+id]; ok {
		t.Fatal("signature still there")
	}
	if after.Data["jws-kubeconfig-zzzzzz"] != "someone-else" || after.Data["kubeconfig"] != before.Data["kubeconfig"] {
		t.Fatalf("delete touched what it did not add: %v", after.Data)
	}
	if _, ok := f.configMap(t, "kube-system", "edgeadm").Data[RecordKeyPrefix+"jws-kubeconfig-"+id]; ok {
		t.Fatal("note still there")
	}
	if len(f.secrets(t)) != 0 {
		t.Fatal("secret still there")
	}

	// Again: nothing to do, no error.
	del, err = Delete(context.Background(), f.cluster(), []string{id}, false)
	if err != nil || len(del) != 1 || del[0].Found || del[0].SignatureRemoved {
		t.Fatalf("second delete: %+v %v", del, err)
	}
}

func TestDeleteLeavesAChangedSignature(t *testing.T) {
	f := newFixture(t)
	_ = f.client.Tracker().Add(clusterInfo(t, f.ca))
	res, err := Create(context.Background(), f.cluster(), CreateOptions{TTL: time.Hour, SignerWait: fastSigner})
	if err != nil {
		t.Fatal(err)
	}
	key := "jws-kubeconfig-" + res.Token.ID()
	cm := f.configMap(t, "kube-public", "cluster-info").DeepCopy()
	cm.Data[key] = "changed-by-someone"
	_ = f.client.Tracker().Update(corev1.SchemeGroupVersion.WithResource("configmaps"), cm, cm.Namespace)

	del, err := Delete(context.Background(), f.cluster(), []string{res.Token.ID()}, false)
	if err != nil {
		t.Fatal(err)
	}
	if !del[0].SignatureLeft || del[0].SignatureRemoved {
		t.Fatalf("deleted: %+v", del)
	}
	if f.configMap(t, "kube-public", "cluster-info").Data[key] != "changed-by-someone" {
		t.Fatal("a changed signature was clobbered")
	}
	if !strings.Contains(f.warn.String(), "changed by someone else") {
		t.Fatalf("no warning: %q", f.warn.String())
	}
}

func TestCreatePrunesSignaturesOfExpiredTokens(t *testing.T) {
	f := newFixture(t)
	_ = f.client.Tracker().Add(clusterInfo(t, f.ca))
	old, err := Create(context.Background(), f.cluster(), CreateOptions{TTL: time.Hour, SignerWait: fastSigner})
	if err != nil {
		t.Fatal(err)
	}
	// Let the token expire, as time would.
	s := f.secrets(t)[0]
	s.Data["expiration"] = []byte(time.Now().Add(-time.Minute).UTC().Format(time.RFC3339))
	_ = f.client.Tracker().Update(corev1.SchemeGroupVersion.WithResource("secrets"), &s, s.Namespace)

	if _, err := Create(context.Background(), f.cluster(), CreateOptions{TTL: time.Hour, SignerWait: fastSigner}); err != nil {
		t.Fatal(err)
	}
	if _, ok := f.configMap(t, "kube-public", "cluster-info").Data["jws-kubeconfig-"+old.Token.ID()]; ok {
		t.Fatal("the expired token's signature was not pruned")
	}
}

func TestCreateNeverSignsAnExpiredToken(t *testing.T) {
	f := newFixture(t)
	_ = f.client.Tracker().Add(clusterInfo(t, f.ca))
	res, err := Create(context.Background(), f.cluster(), CreateOptions{TTL: time.Nanosecond, SignerWait: fastSigner})
	if err != nil {
		t.Fatal(err)
	}
	if res.SignedByEdgeadm {
		t.Fatal("signed an expired token")
	}
	if _, ok := f.configMap(t, "kube-public", "cluster-info").Data["jws-kubeconfig-"+res.Token.ID()]; ok {
		t.Fatal("signature for an expired token")
	}
}

func TestCreateTTLZeroNeverExpiresAndWarns(t *testing.T) {
	f := newFixture(t)
	_ = f.client.Tracker().Add(clusterInfo(t, f.ca))
	res, err := Create(context.Background(), f.cluster(), CreateOptions{TTL: 0, SignerWait: fastSigner})
	if err != nil {
		t.Fatal(err)
	}
	if res.Expires != nil || len(f.secrets(t)[0].Data["expiration"]) != 0 {
		t.Fatal("a --ttl 0 token expires")
	}
	if !strings.Contains(f.warn.String(), "never expires") {
		t.Fatalf("no warning: %q", f.warn.String())
	}
}

func TestCreateRefusesDisagreeingCAs(t *testing.T) {
	f := newFixture(t)
	_ = f.client.Tracker().Add(clusterInfo(t, f.ca))
	other := newTestCA(t, "other")
	_, err := Create(context.Background(), f.cluster(), CreateOptions{
		TTL: time.Hour, PrintJoinCommand: true, MasterPublicAddr: "203.0.113.1", CACertPath: other.file(t), CACertPathExplicit: true,
	})
	if err == nil || !strings.Contains(err.Error(), "is not the one in") || !strings.Contains(err.Error(), other.pin) {
		t.Fatalf("got %v", err)
	}
	if w := f.writes(); len(w) != 0 {
		t.Fatalf("wrote %v", w)
	}

	// An explicit --ca.cert that cannot be read is an error; the default
	// path is only skipped.
	_, err = Create(context.Background(), f.cluster(), CreateOptions{
		TTL: time.Hour, PrintJoinCommand: true, MasterPublicAddr: "203.0.113.1", CACertPath: "/nonexistent/ca.crt", CACertPathExplicit: true,
	})
	if err == nil || !strings.Contains(err.Error(), "/nonexistent/ca.crt") {
		t.Fatalf("got %v", err)
	}
}

func TestCreateDryRunWritesNothing(t *testing.T) {
	f := newFixture(t)
	_ = f.client.Tracker().Add(clusterInfo(t, f.ca))
	res, err := Create(context.Background(), f.cluster(), CreateOptions{
		TTL: time.Hour, PrintJoinCommand: true, MasterPublicAddr: "203.0.113.1:6443", DryRun: true, CACertPath: "/nonexistent", SignerWait: fastSigner,
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Join == nil || res.Secret == nil {
		t.Fatal("dry run shows no plan")
	}
	if w := f.writes(); len(w) != 0 {
		t.Fatalf("dry run wrote %v", w)
	}
}

func TestJoinAddressPort(t *testing.T) {
	https := "https"
	slice := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: "kubernetes", Namespace: "default", Labels: map[string]string{discoveryv1.LabelServiceName: "kubernetes"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{"10.0.0.1"}}},
		Ports:       []discoveryv1.EndpointPort{{Name: &https, Port: ptr.To[int32](7443)}},
	}
	for name, tc := range map[string]struct {
		objs []runtime.Object
		addr string
		want string
	}{
		"given with port":          {addr: "203.0.113.1:9443", want: "203.0.113.1:9443"},
		"recorded address":         {objs: []runtime.Object{edgeadmRecord(t, "masterPublicAddr: edge.example.com:8443\n")}, want: "edge.example.com:8443"},
		"port from record":         {objs: []runtime.Object{edgeadmRecord(t, "apiServerPort: 5443\n"), slice}, addr: "203.0.113.1", want: "203.0.113.1:5443"},
		"port from endpoints":      {objs: []runtime.Object{slice}, addr: "203.0.113.1", want: "203.0.113.1:7443"},
		"port from kubeconfig":     {addr: "203.0.113.1", want: "203.0.113.1:16443"},
		"recorded host, no port":   {objs: []runtime.Object{edgeadmRecord(t, "masterPublicAddr: 198.51.100.7\n"), slice}, want: "198.51.100.7:7443"},
		"ipv6":                     {addr: "2001:db8::1", want: "'[2001:db8::1]:16443'"},
		"given wins over recorded": {objs: []runtime.Object{edgeadmRecord(t, "masterPublicAddr: edge.example.com:8443\n")}, addr: "EDGE2.example.com", want: "edge2.example.com:16443"},
	} {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t, tc.objs...)
			_ = f.client.Tracker().Add(clusterInfo(t, f.ca))
			res, err := Create(context.Background(), f.cluster(), CreateOptions{
				TTL: time.Hour, PrintJoinCommand: true, MasterPublicAddr: tc.addr, DryRun: true,
			})
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.Fields(res.Join.Reveal())[2]; got != tc.want {
				t.Fatalf("address %s, want %s", got, tc.want)
			}
			if strings.Contains(res.Join.Reveal(), "kubernetes.default") {
				t.Fatal("join command names kubernetes.default")
			}
		})
	}
}

func TestSignerSeen(t *testing.T) {
	cm := &corev1.ConfigMap{Data: map[string]string{"kubeconfig": "x", "jws-kubeconfig-aaaaaa": "mine"}}
	rec := &record{signed: map[string]string{"aaaaaa": "mine"}}
	if signerSeen(cm, rec) {
		t.Fatal("edgeadm's own signature taken for a signer's")
	}
	cm.Data["jws-kubeconfig-bbbbbb"] = "theirs"
	if !signerSeen(cm, rec) {
		t.Fatal("a signer's signature not noticed")
	}
}

func TestListSkipsMalformedSecretsWithoutShowingThem(t *testing.T) {
	f := newFixture(t,
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "bootstrap-token-abcdef", Namespace: "kube-system"}, Type: "bootstrap.kubernetes.io/token",
			Data: map[string][]byte{"token-id": []byte("abcdef"), "token-secret": []byte("0123456789abcdef"), "usage-bootstrap-signing": []byte("true")}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "bootstrap-token-broken", Namespace: "kube-system"}, Type: "bootstrap.kubernetes.io/token",
			Data: map[string][]byte{"token-id": []byte("broken"), "token-secret": []byte("NOT-A-VALID-SECRET")}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "other", Namespace: "kube-system"}, Data: map[string][]byte{"x": []byte("y")}},
	)
	got, err := List(context.Background(), f.cluster())
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Token.String() != testToken || got[0].Kind != "BootstrapToken" || got[0].APIVersion != "output.kubeadm.k8s.io/v1alpha3" {
		t.Fatalf("listed %+v", got)
	}
	if w := f.warn.String(); !strings.Contains(w, "bootstrap-token-broken") || strings.Contains(w, "NOT-A-VALID-SECRET") {
		t.Fatalf("warning %q", w)
	}
}

func TestDeleteDryRunWritesNothing(t *testing.T) {
	f := newFixture(t)
	_ = f.client.Tracker().Add(clusterInfo(t, f.ca))
	res, err := Create(context.Background(), f.cluster(), CreateOptions{TTL: time.Hour, SignerWait: fastSigner})
	if err != nil {
		t.Fatal(err)
	}
	f.client.ClearActions()
	del, err := Delete(context.Background(), f.cluster(), []string{res.Token.ID()}, true)
	if err != nil || len(del) != 1 || !del[0].Found || !del[0].SignatureRemoved {
		t.Fatalf("dry run: %+v %v", del, err)
	}
	if w := f.writes(); len(w) != 0 {
		t.Fatalf("dry run wrote %v", w)
	}
}

func TestRemoveSignaturesForDetach(t *testing.T) {
	f := newFixture(t)
	_ = f.client.Tracker().Add(clusterInfo(t, f.ca))
	var ids []string
	for range 2 {
		res, err := Create(context.Background(), f.cluster(), CreateOptions{TTL: time.Hour, SignerWait: fastSigner})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, res.Token.ID())
	}
	removed, err := RemoveSignatures(context.Background(), f.cluster())
	if err != nil || len(removed) != 2 {
		t.Fatalf("removed %v, %v", removed, err)
	}
	cm := f.configMap(t, "kube-public", "cluster-info")
	for _, id := range ids {
		if _, ok := cm.Data["jws-kubeconfig-"+id]; ok {
			t.Fatalf("signature for %s left", id)
		}
	}
	if len(cm.Data) != 1 {
		t.Fatalf("cluster-info is not as it was: %v", cm.Data)
	}
}
