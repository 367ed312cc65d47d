package e2e

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	certutil "k8s.io/client-go/util/cert"
	bootstrapapi "k8s.io/cluster-bootstrap/token/api"
	"k8s.io/kubernetes/cmd/kubeadm/app/util/pubkeypin"

	"github.com/edgeadm/edgeadm/pkg/state"
	"github.com/edgeadm/edgeadm/pkg/token"
	"github.com/edgeadm/edgeadm/test/testenv"
)

// Bounds of the waits in these tests.
const (
	// discoveryFailTimeout bounds a discovery that is expected to fail: kubeadm
	// polls cluster-info until then for a signature that never comes.
	discoveryFailTimeout = 3 * time.Second
	discoveryOKTimeout   = 30 * time.Second
	// controllerTimeout bounds waiting for the controller-manager's
	// tokencleaner and bootstrapsigner to act.
	controllerTimeout = 60 * time.Second
)

var joinLine = regexp.MustCompile(`^edgeadm join (\S+) --token ([a-z0-9]{6})\.([a-z0-9]{16}) --discovery-token-ca-cert-hash (sha256:[0-9a-f]{64})\n$`)

// printedJoin is a parsed "token create --print-join-command" output.
type printedJoin struct {
	addr, id, secret, hash string
}

func (p printedJoin) token() string { return p.id + "." + p.secret }

func parseJoin(t testing.TB, r Result) printedJoin {
	t.Helper()
	if r.Code != 0 {
		t.Fatalf("token create: exit %d\nstderr: %s", r.Code, r.Stderr)
	}
	m := joinLine.FindStringSubmatch(r.Stdout)
	if m == nil {
		t.Fatalf("token create printed %q, want exactly one join line", r.Stdout)
	}
	return printedJoin{addr: m[1], id: m[2], secret: m[3], hash: m[4]}
}

// assertNoSecret fails if the token's secret, in any form it travels in,
// shows up in a log.
func assertNoSecret(t *testing.T, what, log, secret string) {
	t.Helper()
	for _, form := range []string{secret, base64.StdEncoding.EncodeToString([]byte(secret))} {
		for _, line := range strings.Split(log, "\n") {
			if strings.Contains(line, form) {
				t.Errorf("%s shows the token secret (here as <SECRET>): %.600s", what, strings.ReplaceAll(line, form, "<SECRET>"))
			}
		}
	}
}

func TestTokenDiscoveryKubeadmLike(t *testing.T) {
	testTokenDiscovery(t, testenv.ControlPlaneOptions{Flavour: testenv.KubeadmLike})
}

// A non-default port proves it is learned, never assumed.
func TestTokenDiscoveryBare(t *testing.T) {
	testTokenDiscovery(t, testenv.ControlPlaneOptions{Flavour: testenv.Bare, APIServerPort: 7443})
}

func TestTokenDiscoveryBareNoBootstrapSigner(t *testing.T) {
	testTokenDiscovery(t, testenv.ControlPlaneOptions{Flavour: testenv.BareNoBootstrapSigner, APIServerPort: 9443})
}

func testTokenDiscovery(t *testing.T, opts testenv.ControlPlaneOptions) {
	c := testenv.NewCluster(t, opts)
	kc := c.AdminKubeconfig
	signer := opts.Flavour != testenv.BareNoBootstrapSigner
	caPin := pinOf(t, c.CACertPEM())
	public := c.PublicEndpoint()
	kcf := []string{"--kubeconfig", kc}
	base := append(append([]string(nil), kcf...), "--ca.cert", c.CACertPath) // for create

	// Before addon: a cluster without cluster-info gets a clear refusal and
	// no token; without a recorded address, the join command cannot be made.
	before := tokenSecrets(t, c.Client)
	if opts.Flavour != testenv.KubeadmLike {
		r := RunEdgeadm(t, append([]string{"token", "create", "--print-join-command", "--master-public-addr", public}, base...)...)
		if r.Code == 0 || !strings.Contains(r.Stderr, "run edgeadm addon edge-apps first") {
			t.Fatalf("without cluster-info: exit %d, stderr %q", r.Code, r.Stderr)
		}
	} else {
		r := RunEdgeadm(t, append([]string{"token", "create", "--print-join-command"}, base...)...)
		if r.Code == 0 || !strings.Contains(r.Stderr, "--master-public-addr") || strings.Contains(r.Stdout+r.Stderr, "kubernetes.default") {
			t.Fatalf("without an address: exit %d, stdout %q, stderr %q", r.Code, r.Stdout, r.Stderr)
		}
	}
	// Bad flags: usage error, nothing created.
	for _, bad := range [][]string{
		{"--ttl", "-5m"}, {"--groups", "system:masters"}, {"--usages", "signing,everything"},
		{"--print-join-command", "--master-public-addr", "https://" + public},
	} {
		r := RunEdgeadm(t, append(append([]string{"token", "create"}, base...), bad...)...)
		if r.Code != 2 || r.Stdout != "" {
			t.Errorf("token create %v: exit %d, stdout %q, stderr %q; want exit 2 and no output", bad, r.Code, r.Stdout, r.Stderr)
		}
	}
	if after := tokenSecrets(t, c.Client); after != before {
		t.Fatalf("refused commands created tokens: %d before, %d after", before, after)
	}

	prepareJoin(t, c, kc, public)
	if signer {
		waitSignerUp(t, c.Client)
	}

	// The join command, with the address addon recorded, at -v=10.
	r := RunEdgeadm(t, append([]string{"token", "create", "--print-join-command", "-v=10"}, base...)...)
	j := parseJoin(t, r)
	assertNoSecret(t, "token create -v=10 stderr", r.Stderr, j.secret)
	if !strings.Contains(r.Stderr, "Response Body") {
		t.Errorf("edgeadm -v=10 logged no client-go request or response bodies, so this redaction check proves nothing "+
			"(the logger pkg/cmd/app installs must pass on every level klog's -v enables):\n%.2000s", r.Stderr)
	}
	if j.addr != public {
		t.Fatalf("join address %s, want the recorded public address %s", j.addr, public)
	}
	if j.hash != caPin {
		t.Fatalf("CA hash %s, want %s", j.hash, caPin)
	}
	if strings.Contains(r.Stdout, "kubernetes.default") {
		t.Fatal("the join command names kubernetes.default")
	}
	noted := signatureNotes(t, c.Client)
	if signer {
		if noted[j.id] != "" || strings.Contains(r.Stderr, "edgeadm signed it") {
			t.Fatalf("edgeadm signed although the bootstrapsigner runs: notes %v, stderr %q", noted, r.Stderr)
		}
	} else if noted[j.id] == "" || !strings.Contains(r.Stderr, "edgeadm signed it") {
		t.Fatalf("no bootstrapsigner, but edgeadm did not sign: notes %v, stderr %q", noted, r.Stderr)
	}

	// kubeadm's discovery accepts it, and refuses the wrong token, the
	// wrong secret and the wrong hash.
	server, err := discover(t, j.addr, j.token(), []string{j.hash}, discoveryOKTimeout)
	if err != nil {
		t.Fatalf("discovery with the printed token and hash: %v", err)
	}
	t.Logf("discovery OK; cluster-info names %s", server)
	wrongSecret := j.id + "." + strings.Repeat("0", 16)
	if _, err := discover(t, j.addr, wrongSecret, []string{j.hash}, discoveryFailTimeout); err == nil {
		t.Error("discovery succeeded with a wrong token secret")
	}
	if _, err := discover(t, j.addr, "zzzzzz.0123456789abcdef", []string{j.hash}, discoveryFailTimeout); err == nil {
		t.Error("discovery succeeded with a token that does not exist")
	}
	wrongHash := "sha256:" + strings.Repeat("ab", 32)
	if _, err := discover(t, j.addr, j.token(), []string{wrongHash}, discoveryFailTimeout); err == nil || !strings.Contains(err.Error(), "CA") {
		t.Errorf("discovery with a wrong CA hash: %v, want a CA pin failure", err)
	}

	// An explicit --master-public-addr without a port gets the API server's
	// port, whatever it is.
	r = RunEdgeadm(t, append([]string{"token", "create", "--print-join-command", "--master-public-addr", c.Net.CloudIP.String(),
		"--install-pkg-path", "/srv/pkgs/kube linux.tar.gz", "--install-pkg-sha256", strings.Repeat("0f", 32)}, base...)...)
	if r.Code != 0 {
		t.Fatalf("token create with --master-public-addr: %d %s", r.Code, r.Stderr)
	}
	wantPrefix := "edgeadm join " + net.JoinHostPort(c.Net.CloudIP.String(), strconv.Itoa(c.Options.APIServerPort)) + " --token "
	wantSuffix := " --install-pkg-path '/srv/pkgs/kube linux.tar.gz' --install-pkg-sha256 " + strings.Repeat("0f", 32) + "\n"
	if !strings.HasPrefix(r.Stdout, wantPrefix) || !strings.HasSuffix(r.Stdout, wantSuffix) || strings.Count(r.Stdout, "\n") != 1 {
		t.Fatalf("join command %q", r.Stdout)
	}

	// An expired token fails discovery.
	expired := parseJoin(t, RunEdgeadm(t, append([]string{"token", "create", "--print-join-command", "--description", "to expire"}, base...)...))
	if _, err := discover(t, expired.addr, expired.token(), []string{expired.hash}, discoveryOKTimeout); err != nil {
		t.Fatalf("discovery before expiry: %v", err)
	}
	expire(t, c.Client, expired.id)
	waitSecretGone(t, c.Client, expired.id) // the tokencleaner deletes expired tokens
	if signer {
		waitUnsigned(t, c.Client, expired.id) // and then the bootstrapsigner drops the signature
	} else {
		// Nothing removes edgeadm's own signature when a token expires; the
		// next token command prunes it.
		if r := RunEdgeadm(t, append([]string{"token", "delete", "aaaaaa"}, kcf...)...); r.Code != 0 {
			t.Fatalf("token delete: %d %s", r.Code, r.Stderr)
		}
		if signed(t, c.Client, expired.id) || signatureNotes(t, c.Client)[expired.id] != "" {
			t.Fatal("edgeadm's signature for an expired, deleted token was not pruned")
		}
	}
	if _, err := discover(t, expired.addr, expired.token(), []string{expired.hash}, discoveryFailTimeout); err == nil {
		t.Error("discovery succeeded with an expired token")
	}

	// list shows the token like kubeadm does; -o json is a List of
	// kubeadm's output objects.
	r = RunEdgeadm(t, append([]string{"token", "list"}, kcf...)...)
	if r.Code != 0 || !strings.HasPrefix(r.Stdout, "TOKEN") || !strings.Contains(r.Stdout, j.token()) {
		t.Fatalf("token list: %d\n%s\n%s", r.Code, r.Stdout, r.Stderr)
	}
	r = RunEdgeadm(t, append([]string{"token", "list", "-o", "json"}, kcf...)...)
	var list struct {
		Kind  string
		Items []struct {
			APIVersion, Kind, Token string
			Usages, Groups          []string
		}
	}
	if err := json.Unmarshal([]byte(r.Stdout), &list); err != nil || list.Kind != "List" {
		t.Fatalf("token list -o json: %v\n%s", err, r.Stdout)
	}
	found := false
	for _, it := range list.Items {
		if it.Token == j.token() && it.Kind == "BootstrapToken" && strings.Join(it.Usages, ",") == "authentication,signing" &&
			strings.Join(it.Groups, ",") == "system:bootstrappers:kubeadm:default-node-token" {
			found = true
		}
	}
	if !found {
		t.Fatalf("token list -o json lacks %s: %s", j.id, r.Stdout)
	}

	// delete: the Secret goes, the signature goes (edgeadm's own at once, the
	// bootstrapsigner's when it notices), and discovery fails.
	r = RunEdgeadm(t, append([]string{"token", "delete", j.token(), "-v=10"}, kcf...)...)
	if r.Code != 0 || !strings.Contains(r.Stdout, fmt.Sprintf("bootstrap token %q deleted", j.id)) {
		t.Fatalf("token delete: %d %q %q", r.Code, r.Stdout, r.Stderr)
	}
	assertNoSecret(t, "token delete -v=10 stderr", r.Stderr, j.secret)
	if !signer {
		if signed(t, c.Client, j.id) || signatureNotes(t, c.Client)[j.id] != "" {
			t.Fatal("token delete left edgeadm's signature or its note")
		}
	} else {
		waitUnsigned(t, c.Client, j.id)
	}
	if _, err := discover(t, j.addr, j.token(), []string{j.hash}, discoveryFailTimeout); err == nil {
		t.Error("discovery succeeded with a deleted token")
	}
	r = RunEdgeadm(t, append([]string{"token", "delete", j.id}, kcf...)...)
	if r.Code != 0 || !strings.Contains(r.Stdout, "not found") {
		t.Fatalf("second token delete: %d %q %q", r.Code, r.Stdout, r.Stderr)
	}
}

// waitSignerUp returns once the controller-manager's bootstrapsigner signs
// cluster-info, which on a loaded machine can be a while after the control
// plane reports ready: a probe token is made, its signature awaited, and the
// probe removed again (and its signature with it).
func waitSignerUp(t *testing.T, client kubernetes.Interface) {
	t.Helper()
	const id = "e2eprb"
	ctx := context.Background()
	_, err := client.CoreV1().Secrets("kube-system").Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "bootstrap-token-" + id, Namespace: "kube-system"},
		Type:       bootstrapapi.SecretTypeBootstrapToken,
		StringData: map[string]string{"token-id": id, "token-secret": "0123456789abcdef", "usage-bootstrap-signing": "true"},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	waitSigned(t, client, id)
	if err := client.CoreV1().Secrets("kube-system").Delete(ctx, "bootstrap-token-"+id, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitUnsigned(t, client, id)
}

// prepareJoin makes the cluster ready for edge joins as "edgeadm addon
// edge-apps --master-public-addr" does, with the public address recorded.
func prepareJoin(t *testing.T, c *testenv.Cluster, kubeconfig, public string) {
	t.Helper()
	r := RunEdgeadm(t, "addon", "edge-apps", "--kubeconfig", kubeconfig, "--ca.cert", c.CACertPath, "--master-public-addr", public, "--tunnel=false")
	if r.Code == 0 {
		return
	}
	// Token is tested here, not addon: if addon cannot run on this cluster
	// yet, make what it would (cluster-info, its anonymous RBAC, the
	// record), so the token tests still say something.
	t.Logf("edgeadm addon edge-apps failed (exit %d); preparing the cluster as addon would:\n%s", r.Code, r.Stderr)
	ensureClusterInfo(t, c)
	rec := fmt.Sprintf("masterPublicAddr: %s\napiServerPort: %d\n", public, c.Options.APIServerPort)
	patch, _ := json.Marshal(map[string]any{"data": map[string]string{state.ConfigKey: rec}})
	cms := c.Client.CoreV1().ConfigMaps(state.Namespace)
	if _, err := cms.Patch(context.Background(), state.Name, types.MergePatchType, patch, metav1.PatchOptions{}); apierrors.IsNotFound(err) {
		_, err = cms.Create(context.Background(), &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Name: state.Name, Namespace: state.Namespace},
			Data:       map[string]string{state.ConfigKey: rec},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
	} else if err != nil {
		t.Fatal(err)
	}
}

// ensureClusterInfo makes kube-public/cluster-info the way kubeadm does,
// naming a server the API server certificate carries.
func ensureClusterInfo(t *testing.T, c *testenv.Cluster) {
	t.Helper()
	ctx := context.Background()
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters[""] = &clientcmdapi.Cluster{
		Server:                   "https://" + net.JoinHostPort("kubernetes.default", strconv.Itoa(c.Options.APIServerPort)),
		CertificateAuthorityData: c.CACertPEM(),
	}
	kubeconfig, err := clientcmd.Write(*cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "kube-public"}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	if _, err := c.Client.CoreV1().ConfigMaps("kube-public").Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: bootstrapapi.ConfigMapClusterInfo, Namespace: "kube-public"},
		Data:       map[string]string{bootstrapapi.KubeConfigKey: string(kubeconfig)},
	}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	name := "edgeadm-e2e:cluster-info-reader"
	if _, err := c.Client.RbacV1().Roles("kube-public").Create(ctx, &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "kube-public"},
		Rules:      []rbacv1.PolicyRule{{Verbs: []string{"get"}, APIGroups: []string{""}, Resources: []string{"configmaps"}, ResourceNames: []string{bootstrapapi.ConfigMapClusterInfo}}},
	}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	if _, err := c.Client.RbacV1().RoleBindings("kube-public").Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "kube-public"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: name},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.UserKind, Name: "system:anonymous"}},
	}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
}

func pinOf(t *testing.T, pem []byte) string {
	t.Helper()
	certs, err := certutil.ParseCertsPEM(pem)
	if err != nil || len(certs) != 1 {
		t.Fatalf("cluster CA: %v (%d certificates)", err, len(certs))
	}
	return pubkeypin.Hash(certs[0])
}

func tokenSecrets(t *testing.T, client kubernetes.Interface) int {
	t.Helper()
	l, err := client.CoreV1().Secrets("kube-system").List(context.Background(), metav1.ListOptions{
		FieldSelector: fields.OneTermEqualSelector("type", string(bootstrapapi.SecretTypeBootstrapToken)).String(),
	})
	if err != nil {
		t.Fatal(err)
	}
	return len(l.Items)
}

// signatureNotes are edgeadm's notes of the signatures it added, by token ID.
func signatureNotes(t *testing.T, client kubernetes.Interface) map[string]string {
	t.Helper()
	cm, err := client.CoreV1().ConfigMaps(state.Namespace).Get(context.Background(), state.Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return map[string]string{}
	}
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for k, v := range cm.Data {
		if id, ok := strings.CutPrefix(k, token.RecordKeyPrefix+bootstrapapi.JWSSignatureKeyPrefix); ok {
			out[id] = v
		}
	}
	return out
}

func signed(t *testing.T, client kubernetes.Interface, id string) bool {
	t.Helper()
	cm, err := client.CoreV1().ConfigMaps("kube-public").Get(context.Background(), bootstrapapi.ConfigMapClusterInfo, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	_, ok := cm.Data[bootstrapapi.JWSSignatureKeyPrefix+id]
	return ok
}

// expire sets the token's expiration into the past, as time would.
func expire(t *testing.T, client kubernetes.Interface, id string) {
	t.Helper()
	past := time.Now().Add(-time.Minute).UTC().Format(time.RFC3339)
	patch, _ := json.Marshal(map[string]any{"data": map[string]any{bootstrapapi.BootstrapTokenExpirationKey: base64.StdEncoding.EncodeToString([]byte(past))}})
	if _, err := client.CoreV1().Secrets("kube-system").Patch(context.Background(), "bootstrap-token-"+id, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
}

// waitFor watches one object until cond holds, bounded by controllerTimeout.
func waitFor(t *testing.T, what string, get func(context.Context) (object, error),
	watchIt func(context.Context, string) (watch.Interface, error), cond func(obj object, gone bool) bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), controllerTimeout)
	defer cancel()
	for {
		obj, err := get(ctx)
		gone := apierrors.IsNotFound(err)
		if err != nil && !gone {
			t.Fatalf("%s: %v", what, err)
		}
		if cond(obj, gone) {
			return
		}
		rv := ""
		if obj != nil {
			rv = obj.GetResourceVersion()
		}
		w, err := watchIt(ctx, rv)
		if err != nil {
			t.Fatalf("%s: watch: %v", what, err)
		}
		for ev := range w.ResultChan() {
			if ev.Type == watch.Error {
				break
			}
			o, _ := ev.Object.(object)
			if cond(o, ev.Type == watch.Deleted) {
				w.Stop()
				return
			}
		}
		w.Stop()
		if ctx.Err() != nil {
			t.Fatalf("%s: not within %s", what, controllerTimeout)
		}
	}
}

// object is what waitFor looks at.
type object = metav1.Object

func waitSecretGone(t *testing.T, client kubernetes.Interface, id string) {
	t.Helper()
	secrets := client.CoreV1().Secrets("kube-system")
	name := "bootstrap-token-" + id
	waitFor(t, "the tokencleaner deletes expired token "+id,
		func(ctx context.Context) (object, error) {
			s, err := secrets.Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return nil, err
			}
			return s, nil
		},
		func(ctx context.Context, rv string) (watch.Interface, error) {
			return secrets.Watch(ctx, metav1.ListOptions{FieldSelector: fields.OneTermEqualSelector("metadata.name", name).String(), ResourceVersion: rv})
		},
		func(_ object, gone bool) bool { return gone })
}

func waitUnsigned(t *testing.T, client kubernetes.Interface, id string) {
	t.Helper()
	waitSignature(t, client, id, false)
}

func waitSigned(t *testing.T, client kubernetes.Interface, id string) {
	t.Helper()
	waitSignature(t, client, id, true)
}

func waitSignature(t *testing.T, client kubernetes.Interface, id string, want bool) {
	t.Helper()
	cms := client.CoreV1().ConfigMaps("kube-public")
	waitFor(t, fmt.Sprintf("the bootstrapsigner makes cluster-info signed for token %s: %v", id, want),
		func(ctx context.Context) (object, error) {
			cm, err := cms.Get(ctx, bootstrapapi.ConfigMapClusterInfo, metav1.GetOptions{})
			if err != nil {
				return nil, err
			}
			return cm, nil
		},
		func(ctx context.Context, rv string) (watch.Interface, error) {
			return cms.Watch(ctx, metav1.ListOptions{FieldSelector: fields.OneTermEqualSelector("metadata.name", bootstrapapi.ConfigMapClusterInfo).String(), ResourceVersion: rv})
		},
		func(o object, gone bool) bool {
			cm, ok := o.(*corev1.ConfigMap)
			if gone || !ok {
				return !want
			}
			return (cm.Data[bootstrapapi.JWSSignatureKeyPrefix+id] != "") == want
		})
}
