package testenv

import (
	"context"
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	keyutil "k8s.io/client-go/util/keyutil"
	bootstraputil "k8s.io/cluster-bootstrap/token/util"
	kubeletconfig "k8s.io/kubelet/config/v1beta1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"
)

// A kubeadm master is a host (an EdgeHost booted in the cloud namespace
// itself, at CloudIP) made by the real `kubeadm init`: its kubelet runs etcd,
// kube-apiserver, kube-controller-manager and kube-scheduler as static pods
// from /etc/kubernetes/manifests, with /etc/kubernetes/pki, admin.conf and
// kube-system/kubeadm-config as kubeadm leaves them. Unlike the process
// control plane of StartControlPlane, it can be reconfigured the way a
// user's master is: edit a manifest, and its kubelet restarts the pod.
// No registry is reachable, so the images come from the cache
// (scripts/test-env.sh images), loaded before kubeadm runs, and kubeadm
// pulls nothing (imagePullPolicy Never).

// KubeadmMasterName is the master host's name, and its Node's.
const KubeadmMasterName = "master"

// kubeadmMasterImages are the cached image tarballs kubeadm's manifests name.
var kubeadmMasterImages = []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler"}

// Bounds of making a kubeadm master on a loaded two-core machine: boot and
// runtime about 30 s, images about 20 s, kubeadm init about a minute.
const (
	kubeadmMasterStartTimeout = 10 * time.Minute
	kubeadmInitTimeout        = 6 * time.Minute
)

// kubeadmKubeletUnit and kubeadmKubeletDropIn are what kubeadm's packages
// install: a kubelet that restarts until kubeadm init gives it its
// configuration and flags.
const kubeadmKubeletUnit = `[Unit]
Description=kubelet (edgeadm test environment, kubeadm master)
Wants=containerd.service
After=containerd.service

[Service]
ExecStart=/usr/local/bin/kubelet
Restart=always
RestartSec=1

[Install]
WantedBy=multi-user.target
`

const kubeadmKubeletDropIn = `[Service]
Environment="KUBELET_KUBECONFIG_ARGS=--bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf --kubeconfig=/etc/kubernetes/kubelet.conf"
Environment="KUBELET_CONFIG_ARGS=--config=/var/lib/kubelet/config.yaml"
EnvironmentFile=-/var/lib/kubelet/kubeadm-flags.env
EnvironmentFile=-/etc/default/kubelet
ExecStart=
ExecStart=/usr/local/bin/kubelet $KUBELET_KUBECONFIG_ARGS $KUBELET_CONFIG_ARGS $KUBELET_KUBEADM_ARGS $KUBELET_EXTRA_ARGS
`

// kubeadmInitConfig is the `kubeadm init --config` file. The preflight
// checks run and report, but do not stop init ("all"): a container on a
// shared kernel fails some of them (swap, kernel modules) for reasons that
// do not matter here. etcd skips fsync like the process control plane's:
// the machine is shared and its disk slow. The add-ons are skipped: no
// kube-proxy or CoreDNS image exists offline, and nothing here uses them.
const kubeadmInitConfig = `apiVersion: kubeadm.k8s.io/v1beta4
kind: InitConfiguration
bootstrapTokens:
- token: %[1]q
  ttl: 24h0m0s
localAPIEndpoint:
  advertiseAddress: %[2]s
  bindPort: %[3]d
nodeRegistration:
  name: %[4]s
  criSocket: unix:///run/containerd/containerd.sock
  imagePullPolicy: Never
  ignorePreflightErrors: [all]
  kubeletExtraArgs:
  - name: node-ip
    value: %[2]s
skipPhases: [addon/coredns, addon/kube-proxy]
timeouts:
  controlPlaneComponentHealthCheck: 5m0s
  kubeletHealthCheck: 2m0s
---
apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
kubernetesVersion: %[5]s
encryptionAlgorithm: ECDSA-P256
networking:
  serviceSubnet: %[6]s
  podSubnet: %[7]s
  dnsDomain: %[8]s
etcd:
  local:
    extraArgs:
    - name: unsafe-no-fsync
      value: "true"
---
`

// NewKubeadmCluster makes a Network with a kubeadm master in its cloud
// namespace (see KubeadmMasterName) and registers a cleanup that tears both
// down and reports anything left behind. opts must be KubeadmLike (the
// default); images are more image tarballs to load into the master's
// containerd before kubeadm runs (pods the test puts on the master). The
// Cluster's ControlPlane has no processes of its own: Client and
// AdminKubeconfig use a copy of the master's admin.conf (its server is
// CloudIP, which the test process reaches through the bridge), CACertPath
// and CAKeyPath copies of its CA, PKIDir the master's /etc/kubernetes/pki.
// Without root, the tools or the cache it skips the test, or fails it when
// EDGEADM_E2E=1.
func NewKubeadmCluster(t testing.TB, opts ControlPlaneOptions, images ...string) *Cluster {
	t.Helper()
	paths := RequireEnv(t)
	opts, err := opts.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if opts.Flavour != KubeadmLike {
		t.Fatalf("a kubeadm master is %s, not %s", KubeadmLike, opts.Flavour)
	}
	need := []string{paths.BinPath("kubeadm")}
	for _, im := range kubeadmMasterImages {
		need = append(need, filepath.Join(paths.Images, im+".tar"))
	}
	for _, p := range append(need, images...) {
		if _, err := os.Stat(p); err != nil {
			SkipOrFail(t, fmt.Sprintf("%v: %v (run scripts/test-env.sh)", ErrNoCache, err))
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), kubeadmMasterStartTimeout)
	defer cancel()
	began := time.Now()
	n, err := NewNetwork(ctx)
	if err != nil {
		t.Fatalf("make test network: %v", err)
	}
	c := &Cluster{ControlPlane: &ControlPlane{Net: n, Options: opts, ReadyAfter: map[string]time.Duration{}}, Paths: paths}
	t.Cleanup(func() {
		tctx, cancel := context.WithTimeout(context.Background(), teardownTimeout)
		defer cancel()
		if t.Failed() && c.Master != nil && !c.tornDown {
			for _, u := range []string{"kubelet", "containerd"} {
				out, _, _ := c.Master.Exec(tctx, "journalctl", "-u", u, "--no-pager", "-n", "40")
				t.Logf("%s journal on the kubeadm master:\n%s", u, out)
			}
		}
		if err := c.Teardown(tctx); err != nil {
			t.Errorf("teardown: %v", err)
		}
		if left := c.Leftovers(tctx); len(left) > 0 {
			t.Errorf("teardown left behind:\n  %s", strings.Join(left, "\n  "))
		}
	})
	if err := c.startKubeadmMaster(ctx, images, began); err != nil {
		t.Fatalf("kubeadm master: %v", err)
	}
	c.ReadyAfter["total"] = time.Since(began)
	t.Logf("kubeadm master %s in %s ready in %s (%s)", KubeadmMasterName, n.CloudNS,
		c.ReadyAfter["total"].Round(time.Millisecond), formatDurations(c.ReadyAfter))
	return c
}

func (c *Cluster) startKubeadmMaster(ctx context.Context, images []string, began time.Time) error {
	n, paths, o := c.Net, c.Paths, c.Options
	mark := func(name string) { c.ReadyAfter[name] = time.Since(began) }
	dir, err := os.MkdirTemp("", fmt.Sprintf("edgeadm-cp%d-", n.Index))
	if err != nil {
		return err
	}
	c.Dir = dir

	hopts, rootfs, err := hostPrereqs(paths, KubeadmMasterName, EdgeHostOptions{ServiceCIDR: o.ServiceCIDR})
	if err != nil {
		return err
	}
	// The master sits in the cloud namespace at CloudIP, where the process
	// control plane would run: the address edge hosts and the NAT know.
	h, err := bootHost(ctx, n, paths, KubeadmMasterName, &Link{NS: n.CloudNS, IP: n.CloudIP, net: n}, hopts, rootfs)
	if err != nil {
		return err
	}
	c.Master = h
	mark("boot")
	if err := h.InstallRuntime(ctx); err != nil {
		return err
	}
	for _, im := range kubeadmMasterImages {
		images = append(images, filepath.Join(paths.Images, im+".tar"))
	}
	for _, im := range images {
		if err := h.ImportImage(ctx, im); err != nil {
			return err
		}
	}
	mark("runtime-and-images")

	token, err := bootstraputil.GenerateBootstrapToken()
	if err != nil {
		return err
	}
	kubelet := &kubeletconfig.KubeletConfiguration{
		TypeMeta:     metav1.TypeMeta{APIVersion: "kubelet.config.k8s.io/v1beta1", Kind: "KubeletConfiguration"},
		CgroupDriver: "systemd",
		// Never retune the kernel shared with the build machine (edgehost_sysctl.go).
		ProtectKernelDefaults: true,
	}
	if hostIsCgroupV1() {
		kubelet.FailCgroupV1 = ptr.To(false)
	}
	if o.KubeletConfig != nil {
		o.KubeletConfig(kubelet)
	}
	kdoc, err := yaml.Marshal(kubelet)
	if err != nil {
		return err
	}
	config := fmt.Sprintf(kubeadmInitConfig, token, n.CloudIP, o.APIServerPort, KubeadmMasterName, KubernetesVersion,
		o.ServiceCIDR, o.PodCIDR, o.DNSDomain) + string(kdoc)
	files := []struct {
		path string
		data []byte
		mode os.FileMode
	}{
		{"/etc/systemd/system/kubelet.service", []byte(kubeadmKubeletUnit), 0o644},
		{"/etc/systemd/system/kubelet.service.d/10-kubeadm.conf", []byte(kubeadmKubeletDropIn), 0o644},
		// Holds the bootstrap token: root's folder, 0600.
		{"/root/kubeadm-config.yaml", []byte(config), 0o600},
	}
	for _, f := range files {
		if err := h.WriteFile(f.path, f.data, f.mode); err != nil {
			return err
		}
	}
	if err := h.CopyIn(paths.BinPath("kubeadm"), "/usr/local/bin/kubeadm", 0o755); err != nil {
		return err
	}
	if _, _, err := h.Exec(ctx, "systemctl", "daemon-reload"); err != nil {
		return err
	}
	if _, _, err := h.Exec(ctx, "systemctl", "enable", "kubelet.service"); err != nil {
		return err
	}
	ictx, cancel := context.WithTimeout(ctx, kubeadmInitTimeout)
	out, errOut, err := h.Exec(ictx, "kubeadm", "init", "--config", "/root/kubeadm-config.yaml")
	cancel()
	if err := os.WriteFile(filepath.Join(dir, "kubeadm-init.log"), []byte(out+errOut), 0o600); err != nil {
		return err
	}
	if err != nil {
		journal, _, _ := h.Exec(ctx, "journalctl", "-u", "kubelet", "--no-pager", "-n", "40")
		return fmt.Errorf("kubeadm init: %w\n%s\n%s\nkubelet journal:\n%s", err, tail(out, 30), tail(errOut, 30), journal)
	}
	mark("kubeadm-init")
	c.BootstrapToken = token

	if err := c.adoptKubeadmFiles(); err != nil {
		return err
	}
	if err := c.networkKubeadmMaster(ctx); err != nil {
		return err
	}
	mark("node-ready")
	return nil
}

// adoptKubeadmFiles copies admin.conf and the CA out of the master (Dir is
// 0700, the copies 0600) and makes the admin client.
func (c *Cluster) adoptKubeadmFiles() error {
	h := c.Master
	pkiDir := filepath.Join(c.Dir, "pki")
	if err := os.Mkdir(pkiDir, 0o700); err != nil {
		return err
	}
	copies := []struct{ from, to string }{
		{"/etc/kubernetes/admin.conf", filepath.Join(c.Dir, "admin.conf")},
		{"/etc/kubernetes/pki/ca.crt", filepath.Join(pkiDir, "ca.crt")},
		{"/etc/kubernetes/pki/ca.key", filepath.Join(pkiDir, "ca.key")},
	}
	for _, cp := range copies {
		data, err := h.ReadFile(cp.from)
		if err != nil {
			return err
		}
		if err := os.WriteFile(cp.to, data, 0o600); err != nil {
			return err
		}
	}
	c.AdminKubeconfig, c.CACertPath, c.CAKeyPath = copies[0].to, copies[1].to, copies[2].to
	c.PKIDir = filepath.Join(h.Root, "etc/kubernetes/pki")
	caPEM, err := os.ReadFile(c.CACertPath)
	if err != nil {
		return err
	}
	block, _ := pem.Decode(caPEM)
	if block == nil {
		return fmt.Errorf("the master's ca.crt holds no PEM certificate")
	}
	ca, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return fmt.Errorf("the master's ca.crt: %w", err)
	}
	key, err := keyutil.PrivateKeyFromFile(c.CAKeyPath)
	if err != nil {
		return fmt.Errorf("the master's ca.key: %w", err)
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return fmt.Errorf("the master's ca.key is a %T, not a signing key", key)
	}
	c.pki = &PKI{Dir: c.PKIDir, CA: ca, CAKey: signer}
	if c.RESTConfig, c.Client, err = adminClient(c.AdminKubeconfig); err != nil {
		return fmt.Errorf("the master's admin.conf: %w", err)
	}
	return nil
}

// networkKubeadmMaster gives the master's pods the network: the CNI bridge
// on the pod CIDR kube-controller-manager allocated to its Node (so no
// other node's pods get the same addresses), the stand-in for kube-proxy's
// kubernetes Service rule that JoinCloudWorker uses too; then it waits
// until the Node is Ready.
func (c *Cluster) networkKubeadmMaster(ctx context.Context) error {
	h := c.Master
	var cidr string
	wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	err := Poll(wctx, pollInterval, func(ctx context.Context) (bool, error) {
		node, err := c.Client.CoreV1().Nodes().Get(ctx, KubeadmMasterName, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		cidr = node.Spec.PodCIDR
		return cidr != "", nil
	})
	cancel()
	if err != nil {
		return fmt.Errorf("node %s got no pod CIDR from kube-controller-manager: %w", KubeadmMasterName, err)
	}
	if _, err := netip.ParsePrefix(cidr); err != nil {
		return fmt.Errorf("node %s: pod CIDR %q: %w", KubeadmMasterName, cidr, err)
	}
	h.opts.PodCIDR = cidr
	if err := h.WriteFile("/etc/cni/net.d/10-edgeadm-testenv.conflist", []byte(fmt.Sprintf(cniConflist, cidr, h.serviceCIDR())), 0o644); err != nil {
		return err
	}
	if err := h.ProxyKubernetesService(ctx, c.ServiceIP(), netip.AddrPortFrom(c.Net.CloudIP, uint16(c.Options.APIServerPort))); err != nil {
		return err
	}
	return WaitNodeReady(ctx, c.Client, KubeadmMasterName, 2*time.Minute)
}

// KubeadmManifests reads every file of the master's /etc/kubernetes/manifests.
func (c *Cluster) KubeadmManifests() (map[string][]byte, error) {
	if c.Master == nil {
		return nil, errors.New("this cluster has no kubeadm master")
	}
	dir := filepath.Join(c.Master.Root, "etc/kubernetes/manifests")
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	out := map[string][]byte{}
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, err
		}
		out[e.Name()] = data
	}
	return out, nil
}

// MasterPodReady reports whether the mirror pod of a static pod of the
// kubeadm master (component label, as kubeadm's manifests set it) is Ready.
func MasterPodReady(ctx context.Context, client kubernetes.Interface, component string) (bool, error) {
	pod, err := client.CoreV1().Pods(metav1.NamespaceSystem).Get(ctx, component+"-"+KubeadmMasterName, metav1.GetOptions{})
	if err != nil {
		return false, err
	}
	for _, cond := range pod.Status.Conditions {
		if cond.Type == corev1.PodReady {
			return cond.Status == corev1.ConditionTrue, nil
		}
	}
	return false, nil
}

// stopPods ends the kubelet and every pod on h at once, best effort: the
// API server's graceful shutdown and systemd's stop of each pod would
// otherwise outlast a bounded power-off.
func (h *EdgeHost) stopPods(ctx context.Context) {
	if !h.Running() {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	_, _, _ = h.Exec(ctx, "systemctl", "stop", "kubelet.service")
	_, _, _ = h.Exec(ctx, "crictl", "rmp", "--force", "--all")
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
