package testenv

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

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

// A cloud worker is a host in the cloud that runs the cluster's cloud-side
// pods (edge-controller's Deployment), joined the way a real cluster joins
// its non-edge workers: a plain kubelet, TLS-bootstrapped with a bootstrap
// token, as `kubeadm join` does it. It is never labelled an edge node, and
// `edgeadm join` (which is for edge nodes and always labels them) plays no
// part. Here it is an EdgeHost in the test network like any other.

// bootstrapGroup is the group kubeadm gives its default node tokens.
const bootstrapGroup = "system:bootstrappers:kubeadm:default-node-token"

// kubeletConfig is a test node's KubeletConfiguration: failCgroupV1 false
// because the host is cgroup v1, cgroupDriver systemd as on a box with
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

// JoinCloudWorker makes h a cloud worker of c: the runtime from the cache,
// the image tarballs given (loaded before the kubelet starts, so no pod on it
// ever tries a registry), a bootstrap token and kubeadm's bootstrap RBAC, a
// kubelet that TLS-bootstraps through the name kubernetes.default (which the
// serving certificate carries), and a stand-in for kube-proxy's one rule that
// pods need to reach the API server (ProxyKubernetesService). It waits,
// bounded, until the Node is Ready.
func JoinCloudWorker(ctx context.Context, c *Cluster, h *EdgeHost, images ...string) error {
	if err := h.InstallRuntime(ctx); err != nil {
		return err
	}
	for _, im := range images {
		if err := h.ImportImage(ctx, im); err != nil {
			return err
		}
	}
	// Pods scheduled the moment the Node is Ready must already reach the
	// API server.
	if err := h.ProxyKubernetesService(ctx, c.ServiceIP(), netip.AddrPortFrom(c.Net.CloudIP, uint16(c.Options.APIServerPort))); err != nil {
		return err
	}
	token, err := NewBootstrapToken(ctx, c.Client, time.Hour)
	if err != nil {
		return err
	}
	// What `kubeadm init` makes for joining nodes (each is create-or-update).
	for _, phase := range []func(kubernetes.Interface) error{
		nodephase.AllowBootstrapTokensToPostCSRs,
		nodephase.AutoApproveNodeBootstrapTokens,
		nodephase.AutoApproveNodeCertificateRotation,
	} {
		if err := phase(c.Client); err != nil {
			return fmt.Errorf("cloud worker %s: bootstrap RBAC: %w", h.Name, err)
		}
	}
	if err := WriteKubeletBootstrap(ctx, c, h, token); err != nil {
		return err
	}
	if _, _, err := h.Exec(ctx, "systemctl", "enable", "--now", "kubelet.service"); err != nil {
		return fmt.Errorf("cloud worker %s: start kubelet: %w", h.Name, err)
	}
	if err := WaitNodeReady(ctx, c.Client, h.Name, 2*time.Minute); err != nil {
		journal, _, _ := h.Exec(ctx, "journalctl", "-u", "kubelet", "--no-pager", "-n", "40")
		return fmt.Errorf("cloud worker %s: %w\nkubelet journal:\n%s", h.Name, err, journal)
	}
	return nil
}

// WriteKubeletBootstrap writes what a kubelet on h needs to TLS-bootstrap
// into c with token: a hosts line for kubernetes.default at the control
// plane's public address, the bootstrap kubeconfig (0600), the CA, the
// KubeletConfiguration and an (unstarted) kubelet unit.
func WriteKubeletBootstrap(ctx context.Context, c *Cluster, h *EdgeHost, token string) error {
	if err := h.AddHosts(c.Net.CloudIP, "kubernetes.default"); err != nil {
		return err
	}
	ca, err := os.ReadFile(c.CACertPath)
	if err != nil {
		return err
	}
	bootstrap, err := clientcmd.Write(clientcmdapi.Config{
		Clusters:       map[string]*clientcmdapi.Cluster{"cluster": {Server: fmt.Sprintf("https://kubernetes.default:%d", c.Options.APIServerPort), CertificateAuthorityData: ca}},
		AuthInfos:      map[string]*clientcmdapi.AuthInfo{"tls-bootstrap": {Token: token}},
		Contexts:       map[string]*clientcmdapi.Context{"tls-bootstrap": {Cluster: "cluster", AuthInfo: "tls-bootstrap"}},
		CurrentContext: "tls-bootstrap",
	})
	if err != nil {
		return err
	}
	files := []struct {
		path string
		data []byte
		mode os.FileMode
	}{
		{"/etc/kubernetes/bootstrap-kubelet.conf", bootstrap, 0o600},
		{"/etc/kubernetes/pki/ca.crt", ca, 0o644},
		{"/var/lib/kubelet/config.yaml", []byte(fmt.Sprintf(kubeletConfig, ClusterDNS(c.Options.ServiceCIDR), c.Options.DNSDomain)), 0o644},
		{"/etc/systemd/system/kubelet.service", []byte(fmt.Sprintf(kubeletUnit, h.IP())), 0o644},
	}
	for _, f := range files {
		if err := h.WriteFile(f.path, f.data, f.mode); err != nil {
			return fmt.Errorf("kubelet bootstrap on %s: %w", h.Name, err)
		}
	}
	if _, _, err := h.Exec(ctx, "mkdir", "-p", "/etc/kubernetes/manifests"); err != nil {
		return fmt.Errorf("kubelet bootstrap on %s: %w", h.Name, err)
	}
	return nil
}

// ProxyKubernetesService stands in, on h, for the one kube-proxy rule that
// in-cluster clients need: the kubernetes Service's address (serviceIP:443,
// which the serving certificate carries) leads to the API server. The test
// cluster runs no kube-proxy. Pods' packets to the test network leave with
// the host's address, since the control plane has no route to pod subnets.
func (h *EdgeHost) ProxyKubernetesService(ctx context.Context, serviceIP netip.Addr, apiserver netip.AddrPort) error {
	rules := [][]string{
		{"-t", "nat", "-A", "PREROUTING", "-d", serviceIP.String() + "/32", "-p", "tcp", "--dport", "443",
			"-m", "comment", "--comment", "edgeadm-testenv: kubernetes Service", "-j", "DNAT", "--to-destination", apiserver.String()},
		{"-t", "nat", "-A", "POSTROUTING", "-s", h.PodCIDR().String(), "-d", h.net.Subnet.String(),
			"-m", "comment", "--comment", "edgeadm-testenv: pods to the test network", "-j", "MASQUERADE"},
	}
	for _, r := range rules {
		if _, err := h.iptables(ctx, r...); err != nil {
			return fmt.Errorf("proxy the kubernetes Service on %s: %w", h.Name, err)
		}
	}
	return nil
}

// ImportImage loads an OCI or Docker image tarball from the build machine
// into containerd's k8s.io namespace on h, where the kubelet finds it.
func (h *EdgeHost) ImportImage(ctx context.Context, tarball string) error {
	in := "/var/lib/edgeadm-testenv/images/" + filepath.Base(tarball)
	if err := h.CopyIn(tarball, in, 0o644); err != nil {
		return fmt.Errorf("import image %s: %w", tarball, err)
	}
	if out, _, err := h.Exec(ctx, "ctr", "-n", "k8s.io", "images", "import", in); err != nil {
		return fmt.Errorf("import image %s on %s: %w\n%s", tarball, h.Name, err, out)
	}
	return nil
}

// NewBootstrapToken makes a bootstrap token Secret the way kubeadm does
// (usages authentication and signing, kubeadm's default node group) and
// returns the token. The token comes from crypto/rand.
func NewBootstrapToken(ctx context.Context, client kubernetes.Interface, ttl time.Duration) (string, error) {
	token, err := bootstraputil.GenerateBootstrapToken()
	if err != nil {
		return "", err
	}
	id, secret, _ := strings.Cut(token, ".")
	s := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: bootstraputil.BootstrapTokenSecretName(id), Namespace: metav1.NamespaceSystem},
		Type:       bootstrapapi.SecretTypeBootstrapToken,
		StringData: map[string]string{
			bootstrapapi.BootstrapTokenIDKey:               id,
			bootstrapapi.BootstrapTokenSecretKey:           secret,
			bootstrapapi.BootstrapTokenExpirationKey:       time.Now().Add(ttl).UTC().Format(time.RFC3339),
			bootstrapapi.BootstrapTokenUsageAuthentication: "true",
			bootstrapapi.BootstrapTokenUsageSigningKey:     "true",
			bootstrapapi.BootstrapTokenExtraGroupsKey:      bootstrapGroup,
		},
	}
	if _, err := client.CoreV1().Secrets(metav1.NamespaceSystem).Create(ctx, s, metav1.CreateOptions{}); err != nil {
		return "", fmt.Errorf("create bootstrap token %s: %w", id, err)
	}
	return token, nil
}

// ClusterDNS is the tenth address of the service CIDR, kubeadm's choice.
func ClusterDNS(serviceCIDR string) string {
	a := netip.MustParsePrefix(serviceCIDR).Masked().Addr()
	for range 10 {
		a = a.Next()
	}
	return a.String()
}

// WaitNodeReady watches the Node until its Ready condition is True, bounded.
func WaitNodeReady(ctx context.Context, client kubernetes.Interface, name string, timeout time.Duration) error {
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
		return fmt.Errorf("node %s not Ready within %s: %w", name, timeout, err)
	}
	return nil
}
