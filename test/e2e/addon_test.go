package e2e

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	certutil "k8s.io/client-go/util/cert"
	"k8s.io/client-go/util/keyutil"
	bootstrapapi "k8s.io/cluster-bootstrap/token/api"
	"k8s.io/kubernetes/cmd/kubeadm/app/util/pubkeypin"

	"github.com/edgeadm/edgeadm/pkg/addon"
	"github.com/edgeadm/edgeadm/pkg/state"
	"github.com/edgeadm/edgeadm/test/inventory"
	"github.com/edgeadm/edgeadm/test/testenv"
)

// settleTimeout bounds waiting for controllers to finish what follows an
// addon or detach (ReplicaSets and Pods of the Deployment, garbage
// collection, API registration of the CRD's group).
const settleTimeout = 90 * time.Second

// The user's kubeadm objects that addon must adopt and never touch.
var kubeadmObjects = []struct{ ns, name string }{
	{"kube-public", bootstrapapi.ConfigMapClusterInfo},
	{"kube-system", "kubeadm-config"},
	{"kube-system", "kubelet-config"},
}

func addonArgs(c *testenv.Cluster, kubeconfig string, extra ...string) []string {
	// --tunnel=false: the test cluster's API server is not a kubeadm static
	// pod addon can reconfigure (addon would refuse the tunnel).
	return append([]string{"addon", "edge-apps", "--kubeconfig", kubeconfig, "--ca.cert", c.CACertPath,
		"--master-public-addr", c.PublicEndpoint(), "--tunnel=false"}, extra...)
}

// runAddon runs a real addon with -o json and returns its summary.
func runAddon(t *testing.T, c *testenv.Cluster) (addon.Summary, time.Duration) {
	t.Helper()
	start := time.Now()
	r := RunEdgeadm(t, addonArgs(c, c.AdminKubeconfig, "-o", "json")...)
	took := time.Since(start)
	if r.Code != 0 {
		t.Fatalf("addon: exit %d\nstderr:\n%s", r.Code, r.Stderr)
	}
	if testing.Verbose() {
		t.Logf("addon progress (stderr):\n%s", r.Stderr)
	}
	var s addon.Summary
	if err := json.Unmarshal([]byte(r.Stdout), &s); err != nil {
		t.Fatalf("addon -o json printed no summary: %v\n%s", err, r.Stdout)
	}
	return s, took
}

func runDetach(t *testing.T, c *testenv.Cluster, extra ...string) Result {
	t.Helper()
	r := RunEdgeadm(t, append([]string{"detach", "edge-apps", "--kubeconfig", c.AdminKubeconfig}, extra...)...)
	if r.Code != 0 {
		t.Fatalf("detach: exit %d\nstdout:\n%s\nstderr:\n%s", r.Code, r.Stdout, r.Stderr)
	}
	if testing.Verbose() {
		t.Logf("detach:\n%s%s", r.Stderr, r.Stdout)
	}
	return r
}

func take(t *testing.T, c *testenv.Cluster, m inventory.Mode) inventory.Inventory {
	t.Helper()
	inv, err := inventory.Take(context.Background(), c.RESTConfig, inventory.Options{Mode: m, Normalize: normalizeRecord})
	if err != nil {
		t.Fatal(err)
	}
	return inv
}

var recordUID = regexp.MustCompile(`(?m)^(\s*)uid: .*\n`)

// normalizeRecord drops the uids from edgeadm's ownership record: they copy
// the uids of the objects, which the Content mode ignores everywhere else
// (a record written by applying dry-run output has none yet).
func normalizeRecord(gr schema.GroupResource, u *unstructured.Unstructured) {
	if gr.Resource != "configmaps" || u.GetNamespace() != state.Namespace || u.GetName() != state.Name {
		return
	}
	if v, ok, _ := unstructured.NestedString(u.Object, "data", state.OwnershipKey); ok {
		if _, hasRV := u.Object["metadata"].(map[string]any)["resourceVersion"]; !hasRV {
			_ = unstructured.SetNestedField(u.Object, recordUID.ReplaceAllString(v, ""), "data", state.OwnershipKey)
		}
	}
}

// settled waits, bounded, until the cluster's inventory equals want.
func settled(t *testing.T, c *testenv.Cluster, m inventory.Mode, want inventory.Inventory, what string) {
	t.Helper()
	diff, err := inventory.Eventually(context.Background(), c.RESTConfig, inventory.Options{Mode: m, Normalize: normalizeRecord}, want, settleTimeout)
	if err != nil {
		t.Fatal(err)
	}
	if len(diff) > 0 {
		t.Fatalf("%s: the cluster differs after %s:\n  %s", what, settleTimeout, strings.Join(diff, "\n  "))
	}
}

// quiet is how long the inventory must stay unchanged to count as settled.
const quiet = 5 * time.Second

// stable waits until the inventory has not changed for quiet (controllers,
// which keep creating service accounts, signing cluster-info and
// aggregating roles for a while after a control plane starts, are done),
// bounded by settleTimeout, and returns it.
func stable(t *testing.T, c *testenv.Cluster, m inventory.Mode) inventory.Inventory {
	t.Helper()
	deadline := time.Now().Add(settleTimeout)
	prev := take(t, c, m)
	since := time.Now()
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	for range tick.C {
		cur := take(t, c, m)
		if d := inventory.Diff(prev, cur); len(d) > 0 {
			if time.Now().After(deadline) {
				t.Fatalf("the cluster did not settle in %s:\n  %s", settleTimeout, strings.Join(d, "\n  "))
			}
			prev, since = cur, time.Now()
			continue
		}
		if time.Since(since) >= quiet {
			break
		}
	}
	return prev
}

func getObjects(t *testing.T, c *testenv.Cluster) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, o := range kubeadmObjects {
		cm, err := c.Client.CoreV1().ConfigMaps(o.ns).Get(context.Background(), o.name, metav1.GetOptions{})
		if err != nil {
			t.Fatalf("%s/%s: %v", o.ns, o.name, err)
		}
		b, _ := json.Marshal(cm)
		out[o.ns+"/"+o.name] = string(b)
	}
	return out
}

// recordedVersions are the resourceVersions of everything addon wrote, and
// of the record itself.
func recordedVersions(t *testing.T, c *testenv.Cluster) map[string]string {
	t.Helper()
	ctx := context.Background()
	rec, err := state.Get(ctx, c.Client)
	if err != nil || rec == nil {
		t.Fatalf("no record: %v", err)
	}
	out := map[string]string{"record": rec.ResourceVersion}
	dyn := dynamic.NewForConfigOrDie(c.RESTConfig)
	mapper := c.Client.Discovery()
	for _, o := range rec.Ownership.Objects {
		gv, _ := schema.ParseGroupVersion(o.APIVersion)
		rl, err := mapper.ServerResourcesForGroupVersion(o.APIVersion)
		if err != nil {
			t.Fatal(err)
		}
		var res string
		for _, r := range rl.APIResources {
			if r.Kind == o.Kind && !strings.Contains(r.Name, "/") {
				res = r.Name
			}
		}
		ri := dyn.Resource(gv.WithResource(res))
		var u *unstructured.Unstructured
		if o.Namespace != "" {
			u, err = ri.Namespace(o.Namespace).Get(ctx, o.Name, metav1.GetOptions{})
		} else {
			u, err = ri.Get(ctx, o.Name, metav1.GetOptions{})
		}
		if err != nil {
			t.Fatalf("%s: %v", o.Ref(), err)
		}
		out[o.Ref().String()] = u.GetResourceVersion()
	}
	return out
}

// createToken makes a bootstrap token Secret directly, as kubeadm does.
func createToken(t *testing.T, client kubernetes.Interface, id, secret string) {
	t.Helper()
	_, err := client.CoreV1().Secrets("kube-system").Create(context.Background(), &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: bootstrapapi.BootstrapTokenSecretPrefix + id, Namespace: "kube-system"},
		Type:       bootstrapapi.SecretTypeBootstrapToken,
		StringData: map[string]string{
			bootstrapapi.BootstrapTokenIDKey:               id,
			bootstrapapi.BootstrapTokenSecretKey:           secret,
			bootstrapapi.BootstrapTokenExpirationKey:       time.Now().Add(time.Hour).UTC().Format(time.RFC3339),
			bootstrapapi.BootstrapTokenUsageSigningKey:     "true",
			bootstrapapi.BootstrapTokenUsageAuthentication: "true",
			bootstrapapi.BootstrapTokenExtraGroupsKey:      "system:bootstrappers:kubeadm:default-node-token",
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
}

func caHash(t *testing.T, c *testenv.Cluster) string {
	t.Helper()
	certs, err := certutil.CertsFromFile(c.CACertPath)
	if err != nil {
		t.Fatal(err)
	}
	return pubkeypin.Hash(certs[0])
}

// checkDiscovery runs kubeadm's own token discovery against the public
// address: it must succeed with the token and the CA hash, and fail with a
// wrong token or a wrong hash.
func checkDiscovery(t *testing.T, c *testenv.Cluster, hash string) {
	t.Helper()
	createToken(t, c.Client, "e2eadd", "0123456789abcdef")
	server, err := discover(t, c.PublicEndpoint(), "e2eadd.0123456789abcdef", []string{hash}, discoveryOKTimeout)
	if err != nil {
		t.Fatalf("kubeadm discovery after addon: %v", err)
	}
	t.Logf("kubeadm discovery succeeded; cluster-info names %s", server)
	if _, err := discover(t, c.PublicEndpoint(), "e2eadd.ffffffffffffffff", []string{hash}, discoveryFailTimeout); err == nil {
		t.Error("discovery succeeded with a wrong token secret")
	}
	wrong := "sha256:" + strings.Repeat("0", 64)
	if _, err := discover(t, c.PublicEndpoint(), "e2eadd.0123456789abcdef", []string{wrong}, discoveryFailTimeout); err == nil {
		t.Error("discovery succeeded with a wrong CA hash")
	}
	if err := c.Client.CoreV1().Secrets("kube-system").Delete(context.Background(), "bootstrap-token-e2eadd", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
}

func TestAddonKubeadmLike(t *testing.T) {
	c := testenv.NewCluster(t, testenv.ControlPlaneOptions{Flavour: testenv.KubeadmLike, APIServerPort: 7443, ServiceCIDR: "10.112.0.0/16"})
	before := stable(t, c, inventory.Exact)
	user := getObjects(t, c)

	t.Run("bad input changes nothing", func(t *testing.T) {
		testBadInput(t, c)
		settled(t, c, inventory.Exact, before, "after the failed runs")
	})
	t.Run("dry run changes nothing", func(t *testing.T) {
		r := RunEdgeadm(t, addonArgs(c, c.AdminKubeconfig, "--dry-run", "-o", "yaml")...)
		if r.Code != 0 {
			t.Fatalf("dry run: exit %d\n%s", r.Code, r.Stderr)
		}
		for _, o := range kubeadmObjects {
			if strings.Contains(r.Stdout, "name: "+o.name+"\n  namespace: "+o.ns) {
				t.Errorf("dry-run output holds the user's %s/%s: applying it would overwrite it", o.ns, o.name)
			}
		}
		settled(t, c, inventory.Exact, before, "after --dry-run")
	})

	s, _ := runAddon(t, c)
	if s.Facts.ServiceCIDR != "10.112.0.0/16" || s.Facts.SecurePort != 7443 || !s.Facts.Kubeadm || s.Facts.CAHash != caHash(t, c) {
		t.Errorf("facts: service CIDR %s, port %d, kubeadm %t, CA hash %s", s.Facts.ServiceCIDR, s.Facts.SecurePort, s.Facts.Kubeadm, s.Facts.CAHash)
	}
	adopted := map[string]bool{}
	for _, o := range s.Objects {
		if o.Outcome == addon.Adopted {
			adopted[o.Namespace+"/"+o.Name] = true
		}
	}
	for _, o := range kubeadmObjects {
		if !adopted[o.ns+"/"+o.name] {
			t.Errorf("%s/%s was not adopted", o.ns, o.name)
		}
	}
	if got := getObjects(t, c); !equalMaps(got, user) {
		t.Errorf("addon changed the user's kubeadm objects:\n%s", mapDiff(user, got))
	}

	t.Run("second addon changes nothing", func(t *testing.T) {
		rv := recordedVersions(t, c)
		s2, _ := runAddon(t, c)
		if s2.Counts[addon.Created] != 0 {
			t.Errorf("second addon created %d objects", s2.Counts[addon.Created])
		}
		if rv2 := recordedVersions(t, c); !equalMaps(rv, rv2) {
			t.Errorf("resourceVersions changed:\n before %v\n after  %v", rv, rv2)
		}
	})

	runDetach(t, c)
	if got := getObjects(t, c); !equalMaps(got, user) {
		t.Errorf("detach changed the user's kubeadm objects:\n%s", mapDiff(user, got))
	}
	settled(t, c, inventory.Exact, before, "addon then detach")
	r := runDetach(t, c)
	if !strings.Contains(r.Stdout, "nothing to do") {
		t.Errorf("second detach printed %q", r.Stdout)
	}

	// Discovery last: the bootstrapsigner signs the user's cluster-info for
	// the test's token, which is not addon's doing.
	runAddon(t, c)
	checkDiscovery(t, c, s.Facts.CAHash)
}

func TestAddonBare(t *testing.T) {
	c := testenv.NewCluster(t, testenv.ControlPlaneOptions{Flavour: testenv.Bare, APIServerPort: 7443, ServiceCIDR: "10.112.0.0/16"})
	before := stable(t, c, inventory.Exact)
	kubectl := kubectlPath(t, c)
	dir := t.TempDir()

	// Dry run: nothing changes; its output applied by kubectl gives what a
	// real run gives.
	r := RunEdgeadm(t, addonArgs(c, c.AdminKubeconfig, "--dry-run", "-o", "yaml")...)
	if r.Code != 0 {
		t.Fatalf("dry run: exit %d\n%s", r.Code, r.Stderr)
	}
	dryYAML := filepath.Join(dir, "addon.yaml")
	if err := os.WriteFile(dryYAML, []byte(r.Stdout), 0o600); err != nil {
		t.Fatal(err)
	}
	rj := RunEdgeadm(t, addonArgs(c, c.AdminKubeconfig, "--dry-run", "-o", "json")...)
	var list struct {
		Kind  string           `json:"kind"`
		Items []map[string]any `json:"items"`
	}
	if err := json.Unmarshal([]byte(rj.Stdout), &list); err != nil || list.Kind != "List" || len(list.Items) != strings.Count(r.Stdout, "\n---\n")+1 {
		t.Errorf("dry run -o json: kind %q, %d items (%v)", list.Kind, len(list.Items), err)
	}
	settled(t, c, inventory.Exact, before, "after --dry-run")

	applyKubectl := func() time.Duration {
		start := time.Now()
		out, err := exec.Command(kubectl, "--kubeconfig", c.AdminKubeconfig, "apply", "--server-side", "--field-manager=edgeadm", "-f", dryYAML).CombinedOutput()
		if err != nil {
			t.Fatalf("kubectl apply --server-side of the dry-run output: %v\n%s", err, out)
		}
		return time.Since(start)
	}
	applyKubectl()
	viaKubectl := stable(t, c, inventory.Content)
	runDetach(t, c) // the record has no uids: detach goes by the managed-by label
	settled(t, c, inventory.Exact, before, "kubectl-applied dry run, then detach")

	s, _ := runAddon(t, c)
	settled(t, c, inventory.Content, viaKubectl, "a real addon compared with kubectl applying its dry-run output")
	if s.Facts.ServiceCIDR != "10.112.0.0/16" || s.Facts.SecurePort != 7443 || s.Facts.Kubeadm {
		t.Errorf("facts: service CIDR %s (%s), port %d (%s), kubeadm %t", s.Facts.ServiceCIDR, s.Facts.ServiceCIDRSource,
			s.Facts.SecurePort, s.Facts.SecurePortSource, s.Facts.Kubeadm)
	}
	if s.Facts.ClusterDNS != "10.112.0.10" {
		t.Errorf("cluster DNS %s (%s), want the 10th address", s.Facts.ClusterDNS, s.Facts.ClusterDNSSource)
	}
	checkDiscovery(t, c, s.Facts.CAHash)
	runDetach(t, c)
	settled(t, c, inventory.Exact, before, "addon then detach")

	// Benchmark: addon against kubectl applying addon's own dry-run output,
	// each on the clean cluster, alternating.
	const rounds = 3
	var tAddon, tKubectl []time.Duration
	for i := 0; i < rounds; i++ {
		tKubectl = append(tKubectl, applyKubectl())
		runDetach(t, c)
		_, d := runAddon(t, c)
		tAddon = append(tAddon, d)
		runDetach(t, c)
	}
	ma, mk := median(tAddon), median(tKubectl)
	t.Logf("BENCHMARK addon %v (median %v) vs kubectl apply --server-side %v (median %v): ratio %.2f (goal <= 1.2)",
		tAddon, ma, tKubectl, mk, float64(ma)/float64(mk))
	settled(t, c, inventory.Exact, before, "after the benchmark")

	// An addon killed right after its first object is still detachable, and
	// a later addon finishes what it began.
	interruptedAddon(t, c)
	runDetach(t, c)
	settled(t, c, inventory.Exact, before, "killed addon, then detach")
	interruptedAddon(t, c)
	runAddon(t, c)
	rec, err := state.Get(context.Background(), c.Client)
	if err != nil || rec == nil {
		t.Fatalf("record after the resumed addon: %v", err)
	}
	for _, o := range rec.Ownership.Objects {
		if o.How == state.Pending || o.UID == "" {
			t.Errorf("after a complete addon the record still has %s as %s (uid %q)", o.Ref(), o.How, o.UID)
		}
	}
	runDetach(t, c)
	settled(t, c, inventory.Exact, before, "killed addon, addon again, then detach")
}

// interruptedAddon starts addon and kills it (SIGKILL, as a crash would)
// as soon as it reports its first created object.
func interruptedAddon(t *testing.T, c *testenv.Cluster) {
	t.Helper()
	cmd := exec.Command(Edgeadm(t), addonArgs(c, c.AdminKubeconfig)...)
	stderr, err := cmd.StderrPipe()
	must(t, err)
	must(t, cmd.Start())
	sc := bufio.NewScanner(stderr)
	killed := false
	for sc.Scan() {
		if strings.Contains(sc.Text(), "] created ") {
			must(t, cmd.Process.Kill())
			killed = true
			break
		}
	}
	_ = cmd.Wait()
	if !killed {
		t.Fatal("addon ended before it created anything")
	}
}

func TestAddonBareNoBootstrapSigner(t *testing.T) {
	c := testenv.NewCluster(t, testenv.ControlPlaneOptions{Flavour: testenv.BareNoBootstrapSigner})
	before := stable(t, c, inventory.Exact)
	s, _ := runAddon(t, c)
	if s.Facts.BootstrapSigner == "yes" {
		t.Errorf("bootstrapsigner reported as running: %s", s.Facts.BootstrapSignerReason)
	}
	// A token made without a signer: cluster-info is not signed for it, so
	// kubeadm's discovery must fail (edgeadm token create signs it instead).
	createToken(t, c.Client, "e2ensg", "0123456789abcdef")
	if _, err := discover(t, c.PublicEndpoint(), "e2ensg.0123456789abcdef", []string{s.Facts.CAHash}, discoveryFailTimeout); err == nil {
		t.Error("discovery succeeded though nobody signed cluster-info")
	}
	if err := c.Client.CoreV1().Secrets("kube-system").Delete(context.Background(), "bootstrap-token-e2ensg", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	// "edgeadm token create" signs cluster-info itself here; kubeadm's
	// discovery then works, and detach takes the signature out again.
	j := parseJoin(t, RunEdgeadm(t, "token", "create", "--print-join-command", "--kubeconfig", c.AdminKubeconfig, "--ca.cert", c.CACertPath))
	if j.hash != s.Facts.CAHash || j.addr != c.PublicEndpoint() {
		t.Errorf("join command names %s with %s; addon recorded %s with %s", j.addr, j.hash, c.PublicEndpoint(), s.Facts.CAHash)
	}
	if _, err := discover(t, j.addr, j.token(), []string{j.hash}, discoveryOKTimeout); err != nil {
		t.Errorf("discovery with edgeadm's own signature: %v", err)
	}
	if err := c.Client.CoreV1().Secrets("kube-system").Delete(context.Background(), "bootstrap-token-"+j.id, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	// Edge nodes labelled: detach refuses without --force.
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "edge-1", Labels: map[string]string{"superedge.io/edge-node": "enable"}}}
	if _, err := c.Client.CoreV1().Nodes().Create(context.Background(), node, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	r := RunEdgeadm(t, "detach", "edge-apps", "--kubeconfig", c.AdminKubeconfig)
	if r.Code != 5 || !strings.Contains(r.Stderr, "edge-1") || !strings.Contains(r.Stderr, "--force") {
		t.Errorf("detach with an edge node: exit %d, stderr %q", r.Code, r.Stderr)
	}
	dry := runDetach(t, c, "--dry-run", "--force")
	if !strings.Contains(dry.Stdout, "would delete") {
		t.Errorf("detach --dry-run printed %q", dry.Stdout)
	}
	if err := c.Client.CoreV1().Nodes().Delete(context.Background(), "edge-1", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	runDetach(t, c)
	settled(t, c, inventory.Exact, before, "addon then detach")
}

// testBadInput: each mistake fails with one clear error line and a
// non-zero exit, before anything is created.
func testBadInput(t *testing.T, c *testenv.Cluster) {
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.conf")
	must(t, os.WriteFile(garbage, []byte("this: is: not: a kubeconfig\n\t"), 0o600))
	unreachable := filepath.Join(dir, "unreachable.conf")
	writeKubeconfigVariant(t, c, unreachable, func(cfg *clientcmdapi.Config) {
		for _, cl := range cfg.Clusters {
			cl.Server = "https://127.0.0.1:1" // nothing listens on port 1
		}
	})
	nobody := filepath.Join(dir, "nobody.conf")
	certPEM, keyPEM := clientCert(t, c, "edgeadm-e2e-nobody")
	writeKubeconfigVariant(t, c, nobody, func(cfg *clientcmdapi.Config) {
		for _, ai := range cfg.AuthInfos {
			*ai = clientcmdapi.AuthInfo{ClientCertificateData: certPEM, ClientKeyData: keyPEM}
		}
	})
	otherKey := filepath.Join(dir, "other-ca.key")
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.MarshalECPrivateKey(key)
	must(t, os.WriteFile(otherKey, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), 0o600))

	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"missing kubeconfig", addonArgs(c, filepath.Join(dir, "missing.conf")), 1, "--kubeconfig"},
		{"unreadable kubeconfig", addonArgs(c, garbage), 1, "kubeconfig"},
		{"CA key not matching the CA", addonArgs(c, c.AdminKubeconfig, "--ca.key", otherKey), 4, "does not match the CA"},
		{"unreachable apiserver", addonArgs(c, unreachable), 1, "cannot reach the apiserver"},
		{"no permission", addonArgs(c, nobody), 4, "cluster-admin"},
		{"no permission to detach", []string{"detach", "edge-apps", "--kubeconfig", nobody}, 4, "cluster-admin"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := RunEdgeadm(t, tc.args...)
			if r.Code != tc.code {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", r.Code, tc.code, r.Stdout, r.Stderr)
			}
			if tc.code == 0 {
				return
			}
			var errLines []string
			for _, l := range strings.Split(strings.TrimSpace(r.Stderr), "\n") {
				if strings.HasPrefix(l, "error: ") {
					errLines = append(errLines, l)
				}
			}
			if len(errLines) != 1 || !strings.Contains(errLines[0], tc.want) {
				t.Errorf("want one error line naming %q; stderr:\n%s", tc.want, r.Stderr)
			}
			t.Logf("%s", errLines)
		})
	}
}

// writeKubeconfigVariant writes the admin kubeconfig, changed by mutate, to path.
func writeKubeconfigVariant(t *testing.T, c *testenv.Cluster, path string, mutate func(*clientcmdapi.Config)) {
	t.Helper()
	cfg, err := clientcmd.LoadFromFile(c.AdminKubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	if err := clientcmdapi.FlattenConfig(cfg); err != nil {
		t.Fatal(err)
	}
	mutate(cfg)
	must(t, clientcmd.WriteToFile(*cfg, path))
}

// clientCert issues a client certificate for user (no groups, so no
// permissions beyond discovery) from the cluster CA.
func clientCert(t *testing.T, c *testenv.Cluster, user string) ([]byte, []byte) {
	t.Helper()
	cas, err := certutil.CertsFromFile(c.CACertPath)
	must(t, err)
	caKey, err := keyutil.PrivateKeyFromFile(c.CAKeyPath)
	must(t, err)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: user},
		NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, cas[0], &key.PublicKey, caKey)
	must(t, err)
	kder, _ := x509.MarshalECPrivateKey(key)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func kubectlPath(t testing.TB, c *testenv.Cluster) string {
	t.Helper()
	if p := c.Paths.BinPath("kubectl"); fileExists(p) {
		return p
	}
	p, err := exec.LookPath("kubectl")
	if err != nil {
		testenv.SkipOrFail(t, "needs kubectl for the dry-run comparison: "+err.Error())
	}
	return p
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

func median(d []time.Duration) time.Duration {
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

func mapDiff(a, b map[string]string) string {
	var out []string
	for k, v := range a {
		if b[k] != v {
			out = append(out, fmt.Sprintf("%s:\n  before %s\n  after  %s", k, v, b[k]))
		}
	}
	return strings.Join(out, "\n")
}

func equalMaps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}
