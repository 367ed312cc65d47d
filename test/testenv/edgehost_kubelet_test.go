package testenv

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	certsv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	watchtools "k8s.io/client-go/tools/watch"
	bootstrapapi "k8s.io/cluster-bootstrap/token/api"
	bootstraputil "k8s.io/cluster-bootstrap/token/util"
	nodephase "k8s.io/kubernetes/cmd/kubeadm/app/phases/bootstraptoken/node"
)

// The kubelet proof: a real kubelet 1.37 in an edge host joins a real control
// plane by TLS bootstrap with a bootstrap token, the controller-manager
// approves and signs its CSR, and the Node goes Ready.

// bootstrapGroup is the group kubeadm gives its default node tokens.
const bootstrapGroup = "system:bootstrappers:kubeadm:default-node-token"

// kubeletConfig is the edge node's KubeletConfiguration: failCgroupV1 false
// because the host is cgroup v1, cgroupDriver systemd as on an edge box with
// systemd (edgehost_cgroup.go), and protectKernelDefaults so that a kubelet
// never retunes the kernel it shares with the build machine (edgehost_sysctl.go).
const kubeletConfig = `apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
cgroupDriver: systemd
failCgroupV1: false
protectKernelDefaults: true
containerRuntimeEndpoint: unix:///run/containerd/containerd.sock
clusterDNS: [%[1]s]
clusterDomain: %[2]s
resolvConf: /etc/resolv.conf
staticPodPath: /etc/kubernetes/manifests
rotateCertificates: true
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: /etc/kubernetes/pki/ca.crt}
authorization: {mode: Webhook}
`

const kubeletUnit = `[Unit]
Description=kubelet (edgeadm test environment)
Wants=containerd.service
After=containerd.service

[Service]
ExecStart=/usr/local/bin/kubelet --bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf --kubeconfig=/etc/kubernetes/kubelet.conf --config=/var/lib/kubelet/config.yaml --node-ip=%[1]s
Restart=always
RestartSec=1

[Install]
WantedBy=multi-user.target
`

func TestEdgeHostKubeletJoinsByTLSBootstrap(t *testing.T) {
	paths := edgePaths(t, append(append([]string{}, runtimeBinaries...), "kube-apiserver")...)
	c := NewCluster(t, ControlPlaneOptions{Flavour: Bare})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	h := newTestEdgeHost(t, c.Net, paths, "edge1")
	if err := h.InstallRuntime(ctx); err != nil {
		t.Fatal(err)
	}

	// What `kubeadm init` would have made: a token and the bootstrap RBAC.
	token := createBootstrapToken(ctx, t, c.Client)
	for _, phase := range []func(kubernetes.Interface) error{
		nodephase.AllowBootstrapTokensToPostCSRs,
		nodephase.AutoApproveNodeBootstrapTokens,
		nodephase.AutoApproveNodeCertificateRotation,
	} {
		if err := phase(c.Client); err != nil {
			t.Fatal(err)
		}
	}

	// The edge host dials kubernetes.default, a name the serving certificate
	// has, at the control plane's public address.
	if err := h.AddHosts(c.Net.CloudIP, "kubernetes.default"); err != nil {
		t.Fatal(err)
	}
	ca, err := os.ReadFile(c.CACertPath)
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := strings.Cut(c.PublicEndpoint(), ":")
	bootstrap, err := clientcmd.Write(clientcmdapi.Config{
		Clusters:       map[string]*clientcmdapi.Cluster{"cluster": {Server: "https://kubernetes.default:" + port, CertificateAuthorityData: ca}},
		AuthInfos:      map[string]*clientcmdapi.AuthInfo{"tls-bootstrap": {Token: token}},
		Contexts:       map[string]*clientcmdapi.Context{"tls-bootstrap": {Cluster: "cluster", AuthInfo: "tls-bootstrap"}},
		CurrentContext: "tls-bootstrap",
	})
	if err != nil {
		t.Fatal(err)
	}
	files := []struct {
		path string
		data []byte
		mode os.FileMode
	}{
		{"/etc/kubernetes/bootstrap-kubelet.conf", bootstrap, 0o600},
		{"/etc/kubernetes/pki/ca.crt", ca, 0o644},
		{"/var/lib/kubelet/config.yaml", []byte(fmt.Sprintf(kubeletConfig, clusterDNS(t, c.Options.ServiceCIDR), c.Options.DNSDomain)), 0o644},
		{"/etc/systemd/system/kubelet.service", []byte(fmt.Sprintf(kubeletUnit, h.IP())), 0o644},
	}
	for _, f := range files {
		if err := h.WriteFile(f.path, f.data, f.mode); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := h.Exec(ctx, "mkdir", "-p", "/etc/kubernetes/manifests"); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if _, _, err := h.Exec(ctx, "systemctl", "enable", "--now", "kubelet.service"); err != nil {
		t.Fatal(err)
	}
	if err := waitNodeReady(ctx, c.Client, h.Name, 2*time.Minute); err != nil {
		journal, _, _ := h.Exec(ctx, "journalctl", "-u", "kubelet", "--no-pager", "-n", "60")
		t.Fatalf("node %s: %v\nkubelet journal:\n%s", h.Name, err, journal)
	}
	t.Logf("edge host booted in %s; kubelet started to Node Ready in %s",
		h.BootTime.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))

	// The client certificate came from an approved, signed CSR.
	csrs, err := c.Client.CertificatesV1().CertificateSigningRequests().List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	approved := false
	for _, csr := range csrs.Items {
		for _, cond := range csr.Status.Conditions {
			if cond.Type == certsv1.CertificateApproved && csr.Spec.Username == "system:bootstrap:"+strings.SplitN(token, ".", 2)[0] && len(csr.Status.Certificate) > 0 {
				approved = true
			}
		}
	}
	if !approved {
		t.Errorf("no approved and signed CSR from the bootstrap token among %d CSRs", len(csrs.Items))
	}
	// The kubelet's cgroups are the edge host's own: kubepods.slice sits in
	// the machine's subtree of every controller, not at the build machine's top.
	for _, cg := range h.cgroups {
		if cg.Key != "memory" && cg.Key != "cpu" {
			continue
		}
		if _, err := os.Stat(filepath.Join(cg.Dir, "kubepods.slice")); err != nil {
			t.Errorf("no kubepods.slice in the edge host's %s cgroup: %v", cg.Key, err)
		}
		if _, err := os.Stat(filepath.Join(cg.Mount, "kubepods.slice")); err == nil {
			t.Errorf("kubepods.slice at the top of the build machine's %s hierarchy", cg.Key)
		}
	}
}

// createBootstrapToken makes a bootstrap token Secret the way kubeadm does and
// returns the token.
func createBootstrapToken(ctx context.Context, t *testing.T, client kubernetes.Interface) string {
	t.Helper()
	token, err := bootstraputil.GenerateBootstrapToken()
	if err != nil {
		t.Fatal(err)
	}
	id, secret, _ := strings.Cut(token, ".")
	s := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: bootstraputil.BootstrapTokenSecretName(id), Namespace: metav1.NamespaceSystem},
		Type:       bootstrapapi.SecretTypeBootstrapToken,
		StringData: map[string]string{
			bootstrapapi.BootstrapTokenIDKey:               id,
			bootstrapapi.BootstrapTokenSecretKey:           secret,
			bootstrapapi.BootstrapTokenExpirationKey:       time.Now().Add(time.Hour).UTC().Format(time.RFC3339),
			bootstrapapi.BootstrapTokenUsageAuthentication: "true",
			bootstrapapi.BootstrapTokenUsageSigningKey:     "true",
			bootstrapapi.BootstrapTokenExtraGroupsKey:      bootstrapGroup,
		},
	}
	if _, err := client.CoreV1().Secrets(metav1.NamespaceSystem).Create(ctx, s, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	return token
}

// clusterDNS is the tenth address of the service CIDR, kubeadm's choice.
func clusterDNS(t *testing.T, serviceCIDR string) string {
	t.Helper()
	a := netip.MustParsePrefix(serviceCIDR).Masked().Addr()
	for range 10 {
		a = a.Next()
	}
	return a.String()
}

// waitNodeReady watches the Node until its Ready condition is True, bounded.
func waitNodeReady(ctx context.Context, client kubernetes.Interface, name string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	sel := fields.OneTermEqualSelector("metadata.name", name).String()
	lw := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			o.FieldSelector = sel
			return client.CoreV1().Nodes().List(ctx, o)
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			o.FieldSelector = sel
			return client.CoreV1().Nodes().Watch(ctx, o)
		},
	}
	_, err := watchtools.UntilWithSync(ctx, lw, &corev1.Node{}, nil, func(e watch.Event) (bool, error) {
		node, ok := e.Object.(*corev1.Node)
		if !ok {
			return false, nil
		}
		for _, cond := range node.Status.Conditions {
			if cond.Type == corev1.NodeReady && cond.Status == corev1.ConditionTrue {
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		return fmt.Errorf("not Ready within %s: %w", timeout, err)
	}
	return nil
}
