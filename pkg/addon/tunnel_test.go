package addon

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	certutil "k8s.io/client-go/util/cert"
	kubeadmapi "k8s.io/kubernetes/cmd/kubeadm/app/apis/kubeadm"
	kubeadmscheme "k8s.io/kubernetes/cmd/kubeadm/app/apis/kubeadm/scheme"
	kubeadmapiv1 "k8s.io/kubernetes/cmd/kubeadm/app/apis/kubeadm/v1beta4"
	kubeadmconstants "k8s.io/kubernetes/cmd/kubeadm/app/constants"
	"k8s.io/kubernetes/cmd/kubeadm/app/phases/controlplane"
	kubeadmutil "k8s.io/kubernetes/cmd/kubeadm/app/util"
	configutil "k8s.io/kubernetes/cmd/kubeadm/app/util/config"
	"k8s.io/kubernetes/cmd/kubeadm/app/util/pkiutil"

	"github.com/edgeadm/edgeadm/pkg/clusterfacts"
	"github.com/edgeadm/edgeadm/pkg/state"
	"github.com/edgeadm/edgeadm/pkg/tunnel"
)

// tunnelHost is a kubeadm master in a temporary folder (its manifest and
// CA made by kubeadm's own code) and a fake cluster that matches it.
type tunnelHost struct {
	root        string
	paths       tunnel.Paths
	manifest    []byte // kube-apiserver.yaml as kubeadm wrote it
	clusterConf string // kubeadm-config's ClusterConfiguration as uploaded
	ca          *x509.Certificate
	facts       *clusterfacts.Facts
	client      *fake.Clientset
	waiter      *fakeWaiter
	otherWaiter MasterWaiter  // instead of waiter
	progress    *bytes.Buffer // addon's output, if set
}

const (
	cp1Endpoint = "192.168.10.2:6443"
	cp2Endpoint = "192.168.10.3:6443"
)

func kubeadmClusterConfiguration(t *testing.T) *kubeadmapi.ClusterConfiguration {
	t.Helper()
	v := &kubeadmapiv1.ClusterConfiguration{KubernetesVersion: "v1.37.1"}
	kubeadmscheme.Scheme.Default(v)
	cfg := &kubeadmapi.ClusterConfiguration{}
	if err := kubeadmscheme.Scheme.Convert(v, cfg, nil); err != nil {
		t.Fatal(err)
	}
	return cfg
}

func apiServerMirrorPod(node, endpoint string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "kube-apiserver-" + node, Namespace: "kube-system",
			Labels:      map[string]string{"component": "kube-apiserver", "tier": "control-plane"},
			Annotations: map[string]string{kubeadmconstants.KubeAPIServerAdvertiseAddressEndpointAnnotationKey: endpoint}},
		Spec: corev1.PodSpec{NodeName: node},
	}
}

func newTunnelHost(t *testing.T, masters ...*corev1.Pod) *tunnelHost {
	t.Helper()
	root := t.TempDir()
	p := tunnel.DefaultPaths()
	cfg := kubeadmClusterConfiguration(t)
	pods := controlplane.GetStaticPodSpecs(cfg, &kubeadmapi.APIEndpoint{AdvertiseAddress: "192.168.10.2", BindPort: 6443}, nil)
	pod := pods["kube-apiserver"]
	manifest, err := kubeadmutil.MarshalToYaml(&pod, corev1.SchemeGroupVersion)
	if err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(root, p.APIServerManifest()), manifest)
	ca, key, err := pkiutil.NewCertificateAuthority(&pkiutil.CertConfig{Config: certutil.Config{CommonName: "kubernetes"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := pkiutil.WriteCertAndKey(filepath.Join(root, p.PKIDir), "ca", ca, key); err != nil {
		t.Fatal(err)
	}
	doc, err := configutil.MarshalKubeadmConfigObject(cfg, kubeadmapiv1.SchemeGroupVersion)
	if err != nil {
		t.Fatal(err)
	}
	if len(masters) == 0 {
		masters = []*corev1.Pod{apiServerMirrorPod("cp1", cp1Endpoint)}
	}
	objs := []runtime.Object{
		&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: kubeadmconstants.KubeadmConfigConfigMap, Namespace: "kube-system"},
			Data: map[string]string{kubeadmconstants.ClusterConfigurationConfigMapKey: string(doc)}},
		&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: state.Name, Namespace: state.Namespace},
			Data: map[string]string{state.ConfigKey: "{}\n", state.OwnershipKey: "objects: []\n"}},
	}
	for _, m := range masters {
		objs = append(objs, m)
	}
	return &tunnelHost{
		root: root, paths: p, manifest: manifest, clusterConf: string(doc), ca: ca,
		facts:  &clusterfacts.Facts{ServerVersion: "v1.37.1", Kubeadm: true, CA: ca},
		client: fake.NewClientset(objs...),
		waiter: &fakeWaiter{},
	}
}

func write(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func (h *tunnelHost) options() TunnelOptions {
	if h.otherWaiter != nil {
		return TunnelOptions{Root: h.root, Waiter: h.otherWaiter}
	}
	return TunnelOptions{Root: h.root, Waiter: h.waiter}
}

// run is addon's tunnel part, as Run drives it.
func (h *tunnelHost) run(t *testing.T) (*TunnelSummary, error) {
	t.Helper()
	step, err := prepareTunnel(h.facts, h.options())
	if err != nil {
		return nil, err
	}
	step.progress = io.Discard
	if h.progress != nil {
		step.progress = h.progress
	}
	ctx := context.Background()
	if err := step.checkCluster(ctx, h.client); err != nil {
		return nil, err
	}
	s := Settings{MasterPublicAddr: "203.0.113.10:6443", Tunnel: true}
	plan, err := MakePlan(testFacts(), s)
	if err != nil {
		t.Fatal(err)
	}
	pod, err := step.serverPod(plan, s)
	if err != nil {
		t.Fatal(err)
	}
	return step.configure(ctx, h.client, pod)
}

func (h *tunnelHost) read(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(h.root, p))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (h *tunnelHost) exists(p string) bool {
	_, err := os.Stat(filepath.Join(h.root, p))
	return err == nil
}

func (h *tunnelHost) kubeadmConfig(t *testing.T) string {
	t.Helper()
	cm, err := h.client.CoreV1().ConfigMaps("kube-system").Get(context.Background(), kubeadmconstants.KubeadmConfigConfigMap, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return cm.Data[kubeadmconstants.ClusterConfigurationConfigMapKey]
}

func (h *tunnelHost) note(t *testing.T) *TunnelNote {
	t.Helper()
	n, err := GetTunnelNote(context.Background(), h.client)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// snapshot is every file under root with its bytes and mode.
func snapshot(t *testing.T, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		if d.IsDir() {
			out[rel] = fi.Mode().String()
			return nil
		}
		b, err := os.ReadFile(path)
		out[rel] = fi.Mode().String() + " " + string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// fakeWaiter stands for the kubelet and the API server: it answers as told
// and records what was asked, in order.
type fakeWaiter struct {
	calls                         []string
	proxyErr, readyErr, verifyErr error
	before                        Reachable // what Before returns
	verified                      *Reachable
	readyAgainErr                 error // for the API server back without the flag
	checkManifest                 func(configured bool)
}

func (w *fakeWaiter) ProxyServerReady(_ context.Context, m MasterInfo) error {
	w.calls = append(w.calls, "proxy-server-ready "+m.Node)
	return w.proxyErr
}

func (w *fakeWaiter) APIServerReady(_ context.Context, m MasterInfo, configured bool) error {
	if w.checkManifest != nil {
		w.checkManifest(configured)
	}
	if configured {
		w.calls = append(w.calls, "apiserver-ready-with-tunnel "+m.Node)
		return w.readyErr
	}
	w.calls = append(w.calls, "apiserver-ready-without-tunnel "+m.Node)
	return w.readyAgainErr
}

func (w *fakeWaiter) Before(_ context.Context, m MasterInfo) (Reachable, error) {
	w.calls = append(w.calls, "before "+m.Node)
	return w.before, nil
}

func (w *fakeWaiter) Verify(_ context.Context, m MasterInfo, before Reachable) error {
	w.calls = append(w.calls, "verify "+m.Node)
	w.verified = &before
	return w.verifyErr
}

func TestTunnelConfiguresTheLocalMaster(t *testing.T) {
	h := newTunnelHost(t)
	p := h.paths
	// The API server is waited for only once the manifest on disk carries
	// the change.
	h.waiter.checkManifest = func(configured bool) {
		ok, err := tunnel.IsConfigured(h.read(t, p.APIServerManifest()), p)
		if err != nil || ok != configured {
			t.Errorf("waiting for the API server %v the flag, but the manifest has it: %v (%v)", configured, ok, err)
		}
	}
	sum, err := h.run(t)
	if err != nil {
		t.Fatal(err)
	}
	if sum.LocalMaster != "cp1" || !sum.APIServerChanged || !sum.KubeadmConfigChanged || len(sum.PendingMasters) != 0 {
		t.Errorf("summary %+v", sum)
	}
	want := []string{"before cp1", "proxy-server-ready cp1", "apiserver-ready-with-tunnel cp1", "verify cp1"}
	if strings.Join(h.waiter.calls, ",") != strings.Join(want, ",") {
		t.Errorf("steps %v, want %v", h.waiter.calls, want)
	}
	if ok, _ := tunnel.IsConfigured(h.read(t, p.APIServerManifest()), p); !ok {
		t.Error("the manifest lacks the egress flag")
	}
	if !bytes.Equal(h.read(t, p.APIServerBackup()), h.manifest) {
		t.Error("the backup is not the original manifest")
	}
	for _, f := range []string{p.ServerManifest(), p.ServerKubeconfig} {
		fi, err := os.Stat(filepath.Join(h.root, f))
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v, %v (want mode 0600)", f, fi, err)
		}
	}
	serverPod := string(h.read(t, p.ServerManifest()))
	for _, s := range []string{"--server-count=1", "registry.k8s.io/kas-network-proxy/proxy-server:v0.36.0", "--uds-name=" + p.UDSName()} {
		if !strings.Contains(serverPod, s) {
			t.Errorf("server pod lacks %s", s)
		}
	}
	kc := h.read(t, p.ServerKubeconfig)
	if !bytes.Contains(kc, []byte("https://"+cp1Endpoint)) {
		t.Errorf("the server's kubeconfig does not name this master's API server:\n%s", kc)
	}
	patched := h.kubeadmConfig(t)
	if !strings.Contains(patched, tunnel.EgressFlag) {
		t.Errorf("kubeadm-config not patched:\n%s", patched)
	}
	n := h.note(t)
	if n == nil || len(n.Masters) != 1 || n.Masters[0] != (NoteMaster{Node: "cp1", Endpoint: cp1Endpoint}) ||
		n.ClusterConfigurationBefore != h.clusterConf || n.ClusterConfigurationAfter != patched {
		t.Errorf("note %+v", n)
	}

	// Again: nothing changes, not even the server's certificate.
	before := snapshot(t, h.root)
	h.waiter.calls = nil
	sum, err = h.run(t)
	if err != nil {
		t.Fatal(err)
	}
	if sum.APIServerChanged || sum.KubeadmConfigChanged {
		t.Errorf("second run changed something: %+v", sum)
	}
	if after := snapshot(t, h.root); !mapsEqual(before, after) {
		t.Error("the second run changed files on the master")
	}
	if h.kubeadmConfig(t) != patched {
		t.Error("the second run changed kubeadm-config")
	}
}

func mapsEqual(a, b map[string]string) bool {
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

func TestTunnelRollsBack(t *testing.T) {
	for name, set := range map[string]func(w *fakeWaiter){
		"API server not ready": func(w *fakeWaiter) { w.readyErr = errors.New("readyz: connection refused") },
		"node proxy fails":     func(w *fakeWaiter) { w.verifyErr = errors.New("proxy: no agent") },
		"rollback not ready yet": func(w *fakeWaiter) {
			w.verifyErr = errors.New("proxy: no agent")
			w.readyAgainErr = errors.New("still starting")
		},
	} {
		t.Run(name, func(t *testing.T) {
			h := newTunnelHost(t)
			p := h.paths
			set(h.waiter)
			_, err := h.run(t)
			if err == nil {
				t.Fatal("no error")
			}
			if !bytes.Equal(h.read(t, p.APIServerManifest()), h.manifest) {
				t.Error("the manifest is not the original after the rollback")
			}
			if h.waiter.readyAgainErr != nil {
				if !strings.Contains(err.Error(), "the original manifest is back") {
					t.Errorf("error %v", err)
				}
				return
			}
			if !strings.Contains(err.Error(), "rolled back") || !strings.Contains(err.Error(), "--tunnel=false") {
				t.Errorf("error does not say it rolled back and the way out: %v", err)
			}
			if n := len(h.waiter.calls); n == 0 || h.waiter.calls[n-1] != "apiserver-ready-without-tunnel cp1" {
				t.Errorf("did not wait for the restored API server: %v", h.waiter.calls)
			}
			for _, f := range []string{p.ServerManifest(), p.ServerKubeconfig, p.APIServerBackup(), p.EgressConfig} {
				if h.exists(f) {
					t.Errorf("%s left after the rollback", f)
				}
			}
			if h.kubeadmConfig(t) != h.clusterConf {
				t.Error("kubeadm-config changed")
			}
			if n := h.note(t); n == nil || len(n.Masters) != 0 {
				t.Errorf("note after the rollback: %+v", n)
			}
		})
	}
}

func TestTunnelProxyServerNotReadyLeavesTheAPIServerAlone(t *testing.T) {
	h := newTunnelHost(t)
	p := h.paths
	h.waiter.proxyErr = errors.New("pod not Ready")
	_, err := h.run(t)
	if err == nil || !strings.Contains(err.Error(), "was not changed") {
		t.Fatalf("error %v", err)
	}
	if !bytes.Equal(h.read(t, p.APIServerManifest()), h.manifest) || h.exists(p.APIServerBackup()) {
		t.Error("the API server's manifest was touched")
	}
	if h.exists(p.ServerManifest()) || h.exists(p.ServerKubeconfig) {
		t.Error("the proxy server was left on the master")
	}
	if len(h.waiter.calls) != 2 {
		t.Errorf("steps %v", h.waiter.calls)
	}
}

func TestTunnelPendingMasters(t *testing.T) {
	h := newTunnelHost(t, apiServerMirrorPod("cp1", cp1Endpoint), apiServerMirrorPod("cp2", cp2Endpoint))
	sum, err := h.run(t)
	if err != nil {
		t.Fatal(err)
	}
	if len(sum.PendingMasters) != 1 || sum.PendingMasters[0] != "cp2" {
		t.Errorf("pending %v", sum.PendingMasters)
	}
	if !strings.Contains(string(h.read(t, h.paths.ServerManifest())), "--server-count=2") {
		t.Error("the server does not count two masters")
	}
}

// Every refusal: a bad-input error naming the problem, the way out, and
// nothing changed on the host or in the cluster.
func TestTunnelRefusals(t *testing.T) {
	for name, tt := range map[string]struct {
		setup func(t *testing.T, h *tunnelHost)
		want  string
	}{
		"k3s":         {func(t *testing.T, h *tunnelHost) { h.facts.ServerVersion = "v1.37.1+k3s1" }, "--egress-selector-mode"},
		"managed":     {func(t *testing.T, h *tunnelHost) { h.facts.ServerVersion = "v1.37.1-eks-1234" }, "L3 VPN"},
		"not kubeadm": {func(t *testing.T, h *tunnelHost) { h.facts.Kubeadm = false }, "not built by kubeadm"},
		"not on a master": {func(t *testing.T, h *tunnelHost) {
			_ = os.Remove(filepath.Join(h.root, h.paths.APIServerManifest()))
		}, "run addon on a kubeadm master"},
		"no endpoint annotation": {func(t *testing.T, h *tunnelHost) {
			s := strings.Replace(string(h.manifest), kubeadmconstants.KubeAPIServerAdvertiseAddressEndpointAnnotationKey, "x.example/other", 1)
			write(t, filepath.Join(h.root, h.paths.APIServerManifest()), []byte(s))
		}, "cannot tell which master"},
		"foreign egress flag": {func(t *testing.T, h *tunnelHost) {
			s := strings.Replace(string(h.manifest), "    - --allow-privileged=true\n", "    - --allow-privileged=true\n    - --egress-selector-config-file=/etc/mine.yaml\n", 1)
			write(t, filepath.Join(h.root, h.paths.APIServerManifest()), []byte(s))
		}, "which edgeadm did not set"},
		"configured without backup": {func(t *testing.T, h *tunnelHost) {
			b, _, err := tunnel.ConfigureAPIServer(h.manifest, h.paths)
			if err != nil {
				t.Fatal(err)
			}
			write(t, filepath.Join(h.root, h.paths.APIServerManifest()), b)
		}, "cannot be read"},
		"no CA key": {func(t *testing.T, h *tunnelHost) {
			_ = os.Remove(filepath.Join(h.root, h.paths.PKIDir, "ca.key"))
		}, "cluster CA key /etc/kubernetes/pki/ca.key cannot be read"},
		"another cluster's CA": {func(t *testing.T, h *tunnelHost) {
			other, _, _ := pkiutil.NewCertificateAuthority(&pkiutil.CertConfig{Config: certutil.Config{CommonName: "other"}})
			h.facts.CA = other
		}, "not the CA of the cluster the kubeconfig points at"},
		"not a master of this cluster": {func(t *testing.T, h *tunnelHost) {
			_ = h.client.Tracker().Delete(corev1.SchemeGroupVersion.WithResource("pods"), "kube-system", "kube-apiserver-cp1", metav1.DeleteOptions{})
			_ = h.client.Tracker().Add(apiServerMirrorPod("cp9", "192.168.10.9:6443"))
		}, "this host is not a master of the cluster"},
		"kubeadm-config v1beta3": {func(t *testing.T, h *tunnelHost) {
			setClusterConf(t, h, "apiVersion: kubeadm.k8s.io/v1beta3\nkind: ClusterConfiguration\n")
		}, "kubeadm config migrate"},
		"kubeadm-config with a foreign egress flag": {func(t *testing.T, h *tunnelHost) {
			setClusterConf(t, h, "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\napiServer:\n  extraArgs:\n  - name: egress-selector-config-file\n    value: /etc/mine.yaml\n")
		}, "which edgeadm did not set"},
	} {
		t.Run(name, func(t *testing.T) {
			h := newTunnelHost(t)
			tt.setup(t, h)
			before := snapshot(t, h.root)
			kc := h.kubeadmConfig(t)
			h.client.ClearActions()
			_, err := h.run(t)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want %q", err, tt.want)
			}
			if !errors.Is(err, ErrBadInput) {
				t.Errorf("not marked bad input (exit 4): %v", err)
			}
			if !strings.Contains(err.Error(), "--tunnel=false") && !strings.Contains(err.Error(), "by hand") {
				t.Errorf("the error names no way out: %v", err)
			}
			if after := snapshot(t, h.root); !mapsEqual(before, after) {
				t.Error("files changed on the master")
			}
			if h.kubeadmConfig(t) != kc {
				t.Error("kubeadm-config changed")
			}
			for _, a := range h.client.Actions() {
				if a.GetVerb() != "get" && a.GetVerb() != "list" {
					t.Errorf("the cluster was written: %s %s", a.GetVerb(), a.GetResource())
				}
			}
		})
	}
}

func TestTunnelRefusesANonWritableHost(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root writes everywhere")
	}
	h := newTunnelHost(t)
	dir := filepath.Join(h.root, h.paths.ManifestDir)
	if err := os.Chmod(dir, 0o500); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.Chmod(dir, 0o700) })
	_, err := h.run(t)
	if err == nil || !strings.Contains(err.Error(), "run addon as root on the master") || !errors.Is(err, ErrBadInput) {
		t.Fatalf("got %v", err)
	}
}

func setClusterConf(t *testing.T, h *tunnelHost, doc string) {
	t.Helper()
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: kubeadmconstants.KubeadmConfigConfigMap, Namespace: "kube-system"},
		Data: map[string]string{kubeadmconstants.ClusterConfigurationConfigMapKey: doc}}
	if _, err := h.client.CoreV1().ConfigMaps("kube-system").Update(context.Background(), cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func TestMakePlanTunnel(t *testing.T) {
	s := Settings{MasterPublicAddr: "203.0.113.10", KonnectivityImageRepository: "registry.example/mirror"}
	without, err := MakePlan(testFacts(), s)
	if err != nil {
		t.Fatal(err)
	}
	s.Tunnel = true
	with, err := MakePlan(testFacts(), s)
	if err != nil {
		t.Fatal(err)
	}
	var tunnelItems []Item
	for _, it := range with.Items {
		if it.Step == StepTunnel {
			tunnelItems = append(tunnelItems, it)
		}
	}
	if len(with.Items) != len(without.Items)+len(tunnelItems) || len(tunnelItems) != 4 {
		t.Fatalf("%d items with the tunnel, %d without, %d of the tunnel", len(with.Items), len(without.Items), len(tunnelItems))
	}
	for _, it := range without.Items {
		if it.Step == StepTunnel {
			t.Errorf("%s planned without --tunnel", it.Ref())
		}
	}
	kinds := map[string]bool{}
	for _, it := range tunnelItems {
		kinds[it.Object.GetKind()+"/"+it.Object.GetName()] = true
		if it.Mode != Apply {
			t.Errorf("%s: mode %s", it.Ref(), it.Mode)
		}
	}
	for _, k := range []string{"ServiceAccount/konnectivity-agent", "ClusterRoleBinding/edgeadm:konnectivity-server", "DaemonSet/konnectivity-agent-edge", "Deployment/konnectivity-agent-cloud"} {
		if !kinds[k] {
			t.Errorf("%s not planned: %v", k, kinds)
		}
	}
}

// The note is written apart from the record's own keys, by its own field
// manager, and removed without touching them.
func TestTunnelNoteKeepsTheRecord(t *testing.T) {
	h := newTunnelHost(t)
	ctx := context.Background()
	var patches []string
	h.client.PrependReactor("patch", "configmaps", func(a k8stesting.Action) (bool, runtime.Object, error) {
		patches = append(patches, string(a.(k8stesting.PatchAction).GetPatch()))
		return false, nil, nil
	})
	if err := SaveTunnelNote(ctx, h.client, TunnelNote{Masters: []NoteMaster{{Node: "cp1", Endpoint: cp1Endpoint}}}); err != nil {
		t.Fatal(err)
	}
	if n := h.note(t); n == nil || n.Masters[0].Node != "cp1" {
		t.Fatalf("note %+v", n)
	}
	if err := RemoveTunnelNote(ctx, h.client); err != nil {
		t.Fatal(err)
	}
	cm, _ := h.client.CoreV1().ConfigMaps(state.Namespace).Get(ctx, state.Name, metav1.GetOptions{})
	if _, ok := cm.Data[TunnelNoteKey]; ok || cm.Data[state.OwnershipKey] == "" || cm.Data[state.ConfigKey] == "" {
		t.Errorf("record after removing the note: %v", cm.Data)
	}
	for _, p := range patches {
		if strings.Contains(p, state.OwnershipKey) || strings.Contains(p, state.ConfigKey) {
			t.Errorf("the note's patch touches the record's keys: %s", p)
		}
	}
	_ = time.Second
}
