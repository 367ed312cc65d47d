package testenv

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	certificatesv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	bootstrapapi "k8s.io/cluster-bootstrap/token/api"
	"k8s.io/cluster-bootstrap/token/jws"
	bootstraputil "k8s.io/cluster-bootstrap/token/util"

	kubeadmconstants "k8s.io/kubernetes/cmd/kubeadm/app/constants"
	"k8s.io/kubernetes/cmd/kubeadm/app/phases/bootstraptoken/clusterinfo"
	"k8s.io/kubernetes/cmd/kubeadm/app/phases/uploadconfig"
)

// These tests start one real control plane each, one after another (two cores,
// about 500 MB per control plane). Start times and memory are logged, not
// asserted.

func TestKubeadmLikeControlPlaneWithNonDefaultNetworking(t *testing.T) {
	c := NewCluster(t, ControlPlaneOptions{
		Flavour:       KubeadmLike,
		ServiceCIDR:   "10.112.0.0/16",
		DNSDomain:     "edge.test",
		APIServerPort: 16443,
	})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	logRSS(t, c.ControlPlane)

	if got := c.PublicEndpoint(); got != c.Net.CloudIP.String()+":16443" {
		t.Errorf("PublicEndpoint = %s", got)
	}
	checkKubectl(ctx, t, c)
	checkServingCertificate(ctx, t, c.ControlPlane, "10.112.0.1", "kubernetes.default.svc.edge.test")
	checkKubernetesService(ctx, t, c.ControlPlane, "10.112.0.1")
	checkKubeadmObjects(ctx, t, c.ControlPlane)

	// kubeadm's own token is signed, and so is one made afterwards.
	if c.BootstrapToken == "" {
		t.Fatal("KubeadmLike cluster has no bootstrap token")
	}
	id, secret, _ := strings.Cut(c.BootstrapToken, ".")
	if err := waitSigned(ctx, c.Client, id, secret, 30*time.Second); err != nil {
		t.Errorf("kubeadm's token: %v", err)
	}
	id, secret = createToken(ctx, t, c.Client, time.Hour)
	began := time.Now()
	if err := waitSigned(ctx, c.Client, id, secret, 30*time.Second); err != nil {
		t.Errorf("new token: %v", err)
	} else {
		t.Logf("cluster-info signed for a new token %s after it was created", time.Since(began).Round(time.Millisecond))
	}

	// Teardown, early and explicitly, leaves nothing behind.
	stopped := time.Now()
	if err := c.Teardown(ctx); err != nil {
		t.Fatalf("teardown: %v", err)
	}
	t.Logf("teardown took %s", time.Since(stopped).Round(time.Millisecond))
	if left := c.Leftovers(ctx); len(left) > 0 {
		t.Errorf("teardown left behind: %v", left)
	}
}

func TestBareControlPlaneHasNoKubeadmObjects(t *testing.T) {
	c := NewCluster(t, ControlPlaneOptions{Flavour: Bare})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	logRSS(t, c.ControlPlane)

	checkServingCertificate(ctx, t, c.ControlPlane, "10.96.0.1", "kubernetes.default.svc.cluster.local")
	checkKubernetesService(ctx, t, c.ControlPlane, "10.96.0.1")
	checkNoKubeadmObjects(ctx, t, c.ControlPlane)
	if c.BootstrapToken != "" {
		t.Errorf("Bare cluster has a bootstrap token %q", c.BootstrapToken)
	}

	// The signer signs only an existing cluster-info: make one as an operator would.
	createClusterInfo(ctx, t, c.ControlPlane)
	id, secret := createToken(ctx, t, c.Client, time.Hour)
	if err := waitSigned(ctx, c.Client, id, secret, 30*time.Second); err != nil {
		t.Error(err)
	}

	// Nodes get a podCIDR from the pod CIDR, for the bridge CNI.
	node, err := c.Client.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "cidr-probe"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pctx, pcancel := context.WithTimeout(ctx, 30*time.Second)
	defer pcancel()
	err = Poll(pctx, 100*time.Millisecond, func(ctx context.Context) (bool, error) {
		node, err = c.Client.CoreV1().Nodes().Get(ctx, "cidr-probe", metav1.GetOptions{})
		return err == nil && node.Spec.PodCIDR != "", err
	})
	if err != nil {
		t.Errorf("node got no podCIDR: %v", err)
	} else if _, cidr, _ := net.ParseCIDR(node.Spec.PodCIDR); cidr == nil || !strings.HasPrefix(cidr.String(), "10.244.") || !strings.HasSuffix(cidr.String(), "/24") {
		t.Errorf("node podCIDR %s is not a /24 of 10.244.0.0/16", node.Spec.PodCIDR)
	}
}

func TestBareNoBootstrapSignerLeavesClusterInfoUnsigned(t *testing.T) {
	c := NewCluster(t, ControlPlaneOptions{Flavour: BareNoBootstrapSigner})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	logRSS(t, c.ControlPlane)
	checkNoKubeadmObjects(ctx, t, c.ControlPlane)

	// The controller-manager's controllers do run: the tokencleaner removes an
	// expired token. So a missing signature below is the signer's absence, not
	// a controller-manager that is not working yet.
	expiredID, _ := createToken(ctx, t, c.Client, -time.Minute)
	pctx, pcancel := context.WithTimeout(ctx, 30*time.Second)
	defer pcancel()
	if err := Poll(pctx, 100*time.Millisecond, func(ctx context.Context) (bool, error) {
		_, err := c.Client.CoreV1().Secrets(metav1.NamespaceSystem).Get(ctx, bootstraputil.BootstrapTokenSecretName(expiredID), metav1.GetOptions{})
		return apierrors.IsNotFound(err), nil
	}); err != nil {
		t.Fatalf("tokencleaner did not remove an expired token: %v", err)
	}

	createClusterInfo(ctx, t, c.ControlPlane)
	id, secret := createToken(ctx, t, c.Client, time.Hour)
	err := waitSigned(ctx, c.Client, id, secret, 4*time.Second)
	if err == nil {
		t.Fatalf("cluster-info was signed for token %s although the bootstrapsigner is off", id)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("waiting for the (absent) signature: %v", err)
	}
}

func logRSS(t *testing.T, c *ControlPlane) {
	t.Helper()
	rss, err := c.RSS()
	if err != nil {
		t.Logf("rss: %v", err)
		return
	}
	var parts []string
	var total int64
	for _, p := range c.Processes() {
		parts = append(parts, fmt.Sprintf("%s %d MB", p.Name, rss[p.Name]>>20))
		total += rss[p.Name]
	}
	t.Logf("RSS: %s; total %d MB", strings.Join(parts, ", "), total>>20)
}

// checkKubectl: the cached kubectl reaches the apiserver from the host with
// the admin kubeconfig.
func checkKubectl(ctx context.Context, t *testing.T, c *Cluster) {
	t.Helper()
	kubectl := c.Paths.BinPath("kubectl")
	out, err := exec.CommandContext(ctx, kubectl, "--kubeconfig", c.AdminKubeconfig, "get", "--raw", "/readyz").CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "ok" {
		t.Errorf("kubectl get --raw /readyz: %v: %s", err, out)
	}
	out, err = exec.CommandContext(ctx, kubectl, "--kubeconfig", c.AdminKubeconfig, "version", "-o", "json").Output()
	if err != nil {
		t.Fatalf("kubectl version: %v: %s", err, out)
	}
	var v struct {
		Server struct {
			GitVersion string `json:"gitVersion"`
		} `json:"serverVersion"`
	}
	if err := json.Unmarshal(out, &v); err != nil || v.Server.GitVersion != KubernetesVersion {
		t.Errorf("kubectl version: server %q (%v), want %s:\n%s", v.Server.GitVersion, err, KubernetesVersion, out)
	}
}

// checkServingCertificate: the certificate the apiserver serves on CloudIP
// names exactly the in-cluster names, so a client that verifies it against
// CloudIP fails with an x509 error naming CloudIP.
func checkServingCertificate(ctx context.Context, t *testing.T, c *ControlPlane, serviceIP, fqdn string) {
	t.Helper()
	d := tls.Dialer{Config: &tls.Config{InsecureSkipVerify: true}} //nolint:gosec // only reading what is served
	conn, err := d.DialContext(ctx, "tcp", c.PublicEndpoint())
	if err != nil {
		t.Fatalf("dial %s: %v", c.PublicEndpoint(), err)
	}
	served := conn.(*tls.Conn).ConnectionState().PeerCertificates[0]
	conn.Close()
	wantDNS := []string{"kubernetes", "kubernetes.default", "kubernetes.default.svc", fqdn}
	var ips []string
	for _, ip := range served.IPAddresses {
		ips = append(ips, ip.String())
	}
	if !slices.Equal(served.DNSNames, wantDNS) || !slices.Equal(ips, []string{serviceIP, "127.0.0.1"}) {
		t.Errorf("served certificate names DNS %v IPs %v; want exactly %v and [%s 127.0.0.1]", served.DNSNames, ips, wantDNS, serviceIP)
	}

	plain := rest.CopyConfig(c.RESTConfig)
	plain.TLSClientConfig.ServerName = ""
	client, err := kubernetes.NewForConfig(plain)
	if err != nil {
		t.Fatal(err)
	}
	_, err = client.Discovery().ServerVersion()
	if err == nil || !strings.Contains(err.Error(), "x509") || !strings.Contains(err.Error(), c.Net.CloudIP.String()) {
		t.Errorf("a client verifying the certificate against %s got %v; want an x509 error naming that address", c.Net.CloudIP, err)
	} else {
		t.Logf("as intended, without tls-server-name: %v", err)
	}
}

func checkKubernetesService(ctx context.Context, t *testing.T, c *ControlPlane, want string) {
	t.Helper()
	svc, err := c.Client.CoreV1().Services(metav1.NamespaceDefault).Get(ctx, "kubernetes", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if svc.Spec.ClusterIP != want || c.ServiceIP().String() != want {
		t.Errorf("kubernetes Service IP %s, ServiceIP() %s; want %s", svc.Spec.ClusterIP, c.ServiceIP(), want)
	}
}

// kubeadmRBAC are the RBAC objects `kubeadm init` makes for joins, by kind,
// named by kubeadm's own constants.
var kubeadmRBAC = struct{ clusterRoles, clusterRoleBindings, systemRoles, systemRoleBindings, publicRoles, publicRoleBindings []string }{
	clusterRoles: []string{kubeadmconstants.GetNodesClusterRoleName},
	clusterRoleBindings: []string{
		kubeadmconstants.GetNodesClusterRoleName,
		kubeadmconstants.NodeKubeletBootstrap,
		kubeadmconstants.NodeAutoApproveBootstrapClusterRoleBinding,
		kubeadmconstants.NodeAutoApproveCertificateRotationClusterRoleBinding,
		kubeadmconstants.ClusterAdminsGroupAndClusterRoleBinding,
		kubeadmconstants.KubeletAPIAdminClusterRoleBindingName,
	},
	systemRoles:        []string{uploadconfig.NodesKubeadmConfigClusterRoleName, kubeadmconstants.KubeletBaseConfigMapRole},
	systemRoleBindings: []string{uploadconfig.NodesKubeadmConfigClusterRoleName, kubeadmconstants.KubeletBaseConfigMapRole},
	publicRoles:        []string{clusterinfo.BootstrapSignerClusterRoleName},
	publicRoleBindings: []string{clusterinfo.BootstrapSignerClusterRoleName},
}

func checkKubeadmObjects(ctx context.Context, t *testing.T, c *ControlPlane) {
	t.Helper()
	// cluster-info: the CA and the public endpoint, readable anonymously.
	anon := rest.AnonymousClientConfig(c.RESTConfig)
	anonClient, err := kubernetes.NewForConfig(anon)
	if err != nil {
		t.Fatal(err)
	}
	ci, err := anonClient.CoreV1().ConfigMaps(metav1.NamespacePublic).Get(ctx, bootstrapapi.ConfigMapClusterInfo, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("anonymous get of cluster-info: %v", err)
	}
	kc, err := clientcmd.Load([]byte(ci.Data[bootstrapapi.KubeConfigKey]))
	if err != nil {
		t.Fatalf("cluster-info kubeconfig: %v", err)
	}
	cluster := kc.Clusters[""]
	if cluster == nil || cluster.Server != "https://"+c.PublicEndpoint() || string(cluster.CertificateAuthorityData) != string(c.pki.CAPEM()) || cluster.TLSServerName != "" {
		t.Errorf("cluster-info cluster = %+v, want server https://%s, the cluster CA and no tls-server-name", cluster, c.PublicEndpoint())
	}

	cms := c.Client.CoreV1().ConfigMaps(metav1.NamespaceSystem)
	kcfg, err := cms.Get(ctx, "kubeadm-config", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cc := kcfg.Data["ClusterConfiguration"]
	for _, want := range []string{
		"kind: ClusterConfiguration", "kubernetesVersion: " + KubernetesVersion,
		"controlPlaneEndpoint: " + c.PublicEndpoint(),
		"serviceSubnet: " + c.Options.ServiceCIDR, "podSubnet: " + c.Options.PodCIDR, "dnsDomain: " + c.Options.DNSDomain,
	} {
		if !strings.Contains(cc, want) {
			t.Errorf("kubeadm-config lacks %q:\n%s", want, cc)
		}
	}
	kl, err := cms.Get(ctx, "kubelet-config", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"kind: KubeletConfiguration", "clusterDomain: " + c.Options.DNSDomain, "rotateCertificates: true"} {
		if !strings.Contains(kl.Data["kubelet"], want) {
			t.Errorf("kubelet-config lacks %q:\n%s", want, kl.Data["kubelet"])
		}
	}

	rbac := c.Client.RbacV1()
	for _, n := range kubeadmRBAC.clusterRoles {
		if _, err := rbac.ClusterRoles().Get(ctx, n, metav1.GetOptions{}); err != nil {
			t.Errorf("ClusterRole %s: %v", n, err)
		}
	}
	for _, n := range kubeadmRBAC.clusterRoleBindings {
		if _, err := rbac.ClusterRoleBindings().Get(ctx, n, metav1.GetOptions{}); err != nil {
			t.Errorf("ClusterRoleBinding %s: %v", n, err)
		}
	}
	for ns, names := range map[string][2][]string{
		metav1.NamespaceSystem: {kubeadmRBAC.systemRoles, kubeadmRBAC.systemRoleBindings},
		metav1.NamespacePublic: {kubeadmRBAC.publicRoles, kubeadmRBAC.publicRoleBindings},
	} {
		for _, n := range names[0] {
			if _, err := rbac.Roles(ns).Get(ctx, n, metav1.GetOptions{}); err != nil {
				t.Errorf("Role %s/%s: %v", ns, n, err)
			}
		}
		for _, n := range names[1] {
			if _, err := rbac.RoleBindings(ns).Get(ctx, n, metav1.GetOptions{}); err != nil {
				t.Errorf("RoleBinding %s/%s: %v", ns, n, err)
			}
		}
	}

	// What the RBAC is for: a bootstrap token may post CSRs, get nodes and read
	// kubeadm-config and kubelet-config.
	id, secret := createToken(ctx, t, c.Client, time.Hour)
	tokenCfg := rest.AnonymousClientConfig(c.RESTConfig)
	tokenCfg.BearerToken = id + "." + secret
	tokenClient, err := kubernetes.NewForConfig(tokenCfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, check := range []struct {
		what string
		err  error
	}{
		{"get kubeadm-config", get(tokenClient.CoreV1().ConfigMaps(metav1.NamespaceSystem).Get(ctx, "kubeadm-config", metav1.GetOptions{}))},
		{"get kubelet-config", get(tokenClient.CoreV1().ConfigMaps(metav1.NamespaceSystem).Get(ctx, "kubelet-config", metav1.GetOptions{}))},
		{"get nodes", notFoundIsFine(get(tokenClient.CoreV1().Nodes().Get(ctx, "no-such-node", metav1.GetOptions{})))},
		{"list CSRs", get(tokenClient.CertificatesV1().CertificateSigningRequests().List(ctx, metav1.ListOptions{}))},
	} {
		if check.err != nil {
			t.Errorf("bootstrap token cannot %s: %v", check.what, check.err)
		}
	}

	// And the point of it all: a CSR posted with the token, as a kubelet's TLS
	// bootstrap does, is approved and signed without anybody's help.
	checkBootstrapCSR(ctx, t, tokenClient)
}

func get[T any](_ T, err error) error { return err }

// notFoundIsFine: "not found" means the request was allowed.
func notFoundIsFine(err error) error {
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}

func checkNoKubeadmObjects(ctx context.Context, t *testing.T, c *ControlPlane) {
	t.Helper()
	if _, err := c.Client.CoreV1().ConfigMaps(metav1.NamespacePublic).Get(ctx, bootstrapapi.ConfigMapClusterInfo, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("kube-public/cluster-info: %v, want not found", err)
	}
	for _, n := range []string{"kubeadm-config", "kubelet-config"} {
		if _, err := c.Client.CoreV1().ConfigMaps(metav1.NamespaceSystem).Get(ctx, n, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Errorf("kube-system/%s: %v, want not found", n, err)
		}
	}
	var found []string
	crs, err := c.Client.RbacV1().ClusterRoles().List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range crs.Items {
		found = append(found, "ClusterRole "+o.Name)
	}
	crbs, err := c.Client.RbacV1().ClusterRoleBindings().List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range crbs.Items {
		found = append(found, "ClusterRoleBinding "+o.Name)
		if slices.ContainsFunc(o.Subjects, func(s rbacv1.Subject) bool { return strings.HasPrefix(s.Name, "system:bootstrappers") }) {
			t.Errorf("ClusterRoleBinding %s grants bootstrap tokens something", o.Name)
		}
	}
	for _, ns := range []string{metav1.NamespaceSystem, metav1.NamespacePublic} {
		rs, err := c.Client.RbacV1().Roles(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range rs.Items {
			found = append(found, "Role "+ns+"/"+o.Name)
		}
		rbs, err := c.Client.RbacV1().RoleBindings(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range rbs.Items {
			found = append(found, "RoleBinding "+ns+"/"+o.Name)
		}
	}
	for _, f := range found {
		if strings.Contains(f, "kubeadm:") {
			t.Errorf("%s exists in a cluster without kubeadm", f)
		}
	}
	secrets, err := c.Client.CoreV1().Secrets(metav1.NamespaceSystem).List(ctx, metav1.ListOptions{FieldSelector: "type=" + string(bootstrapapi.SecretTypeBootstrapToken)})
	if err != nil {
		t.Fatal(err)
	}
	if len(secrets.Items) > 0 {
		t.Errorf("%d bootstrap token(s) exist in a cluster without kubeadm", len(secrets.Items))
	}
}

// createClusterInfo makes kube-public/cluster-info the way an operator of a
// non-kubeadm cluster would: the CA and the public endpoint, nothing signed.
func createClusterInfo(ctx context.Context, t *testing.T, c *ControlPlane) {
	t.Helper()
	kc := clientcmdapi.NewConfig()
	kc.Clusters[""] = &clientcmdapi.Cluster{Server: "https://" + c.PublicEndpoint(), CertificateAuthorityData: c.pki.CAPEM()}
	data, err := clientcmd.Write(*kc)
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Client.CoreV1().ConfigMaps(metav1.NamespacePublic).Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: bootstrapapi.ConfigMapClusterInfo, Namespace: metav1.NamespacePublic},
		Data:       map[string]string{bootstrapapi.KubeConfigKey: string(data)},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
}

// createToken makes a bootstrap token Secret for signing and authentication
// that expires after ttl (negative: already expired), and returns its parts.
func createToken(ctx context.Context, t *testing.T, client kubernetes.Interface, ttl time.Duration) (id, secret string) {
	t.Helper()
	token, err := bootstraputil.GenerateBootstrapToken()
	if err != nil {
		t.Fatal(err)
	}
	id, secret, _ = strings.Cut(token, ".")
	_, err = client.CoreV1().Secrets(metav1.NamespaceSystem).Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: bootstraputil.BootstrapTokenSecretName(id), Namespace: metav1.NamespaceSystem},
		Type:       bootstrapapi.SecretTypeBootstrapToken,
		StringData: map[string]string{
			bootstrapapi.BootstrapTokenIDKey:               id,
			bootstrapapi.BootstrapTokenSecretKey:           secret,
			bootstrapapi.BootstrapTokenExpirationKey:       time.Now().Add(ttl).UTC().Format(time.RFC3339),
			bootstrapapi.BootstrapTokenUsageSigningKey:     "true",
			bootstrapapi.BootstrapTokenUsageAuthentication: "true",
			bootstrapapi.BootstrapTokenExtraGroupsKey:      "system:bootstrappers:kubeadm:default-node-token",
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return id, secret
}

// waitSigned waits, at most bound, for cluster-info to carry a valid JWS
// signature for the token; on timeout the error wraps context.DeadlineExceeded.
func waitSigned(ctx context.Context, client kubernetes.Interface, id, secret string, bound time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, bound)
	defer cancel()
	err := Poll(ctx, 50*time.Millisecond, func(ctx context.Context) (bool, error) {
		cm, err := client.CoreV1().ConfigMaps(metav1.NamespacePublic).Get(ctx, bootstrapapi.ConfigMapClusterInfo, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		sig, ok := cm.Data[bootstrapapi.JWSSignatureKeyPrefix+id]
		if !ok {
			return false, nil
		}
		if !jws.DetachedTokenIsValid(sig, cm.Data[bootstrapapi.KubeConfigKey], id, secret) {
			return false, fmt.Errorf("signature for %s does not verify", id)
		}
		return true, nil
	})
	if err != nil {
		return fmt.Errorf("no valid %s%s in cluster-info within %s: %w", bootstrapapi.JWSSignatureKeyPrefix, id, bound, err)
	}
	return nil
}

// A control plane that cannot start says why, with the failing process's own
// words, and leaves nothing behind. Fake binaries stand in for the cache, so
// this runs without it.
func TestStartFailureReportsLogTailAndCleansUp(t *testing.T) {
	if os.Geteuid() != 0 {
		SkipOrFail(t, "needs root to make network namespaces")
	}
	cache := t.TempDir()
	paths := Paths{Cache: cache, Bin: filepath.Join(cache, "bin")}
	if err := os.MkdirAll(paths.Bin, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, b := range requiredBinaries {
		script := fmt.Sprintf("#!/bin/sh\necho \"fake %s refuses to start\" >&2\nexit 3\n", b)
		if err := os.WriteFile(paths.BinPath(b), []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	n, err := NewNetwork(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Teardown(context.Background()) })

	cp, err := StartControlPlane(ctx, n, paths, ControlPlaneOptions{Flavour: Bare})
	if err == nil {
		_ = cp.Stop(ctx)
		t.Fatal("control plane started with binaries that exit at once")
	}
	t.Logf("start failed as intended: %v", err)
	for _, want := range []string{"etcd exited", "fake etcd refuses to start", "exit status 3"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), fmt.Sprintf("edgeadm-cp%d-*", n.Index)))
	if len(dirs) > 0 {
		t.Errorf("failed start left its folder: %v", dirs)
	}
	if err := n.Teardown(ctx); err != nil {
		t.Fatal(err)
	}
	if left := Leftovers(ctx, n, nil); len(left) > 0 {
		t.Errorf("leftovers: %v", left)
	}
}

// checkBootstrapCSR posts a kubelet client CSR with a bootstrap token client and
// waits, bounded, for it to be auto-approved and signed.
func checkBootstrapCSR(ctx context.Context, t *testing.T, tokenClient kubernetes.Interface) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject: pkix.Name{CommonName: "system:node:csr-probe", Organization: []string{"system:nodes"}},
	}, key)
	if err != nil {
		t.Fatal(err)
	}
	csrs := tokenClient.CertificatesV1().CertificateSigningRequests()
	csr, err := csrs.Create(ctx, &certificatesv1.CertificateSigningRequest{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "csr-probe-"},
		Spec: certificatesv1.CertificateSigningRequestSpec{
			Request:    pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}),
			SignerName: certificatesv1.KubeAPIServerClientKubeletSignerName,
			Usages:     []certificatesv1.KeyUsage{certificatesv1.UsageDigitalSignature, certificatesv1.UsageClientAuth},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("bootstrap token cannot post a CSR: %v", err)
	}
	began := time.Now()
	pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := Poll(pctx, 100*time.Millisecond, func(ctx context.Context) (bool, error) {
		got, err := csrs.Get(ctx, csr.Name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		return len(got.Status.Certificate) > 0, nil
	}); err != nil {
		t.Errorf("CSR %s posted with a bootstrap token was not approved and signed: %v", csr.Name, err)
		return
	}
	t.Logf("bootstrap CSR approved and signed %s after it was posted", time.Since(began).Round(time.Millisecond))
}
