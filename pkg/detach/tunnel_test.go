package detach

import (
	"bytes"
	"context"
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
	certutil "k8s.io/client-go/util/cert"
	kubeadmapi "k8s.io/kubernetes/cmd/kubeadm/app/apis/kubeadm"
	kubeadmscheme "k8s.io/kubernetes/cmd/kubeadm/app/apis/kubeadm/scheme"
	kubeadmapiv1 "k8s.io/kubernetes/cmd/kubeadm/app/apis/kubeadm/v1beta4"
	kubeadmconstants "k8s.io/kubernetes/cmd/kubeadm/app/constants"
	"k8s.io/kubernetes/cmd/kubeadm/app/phases/controlplane"
	kubeadmutil "k8s.io/kubernetes/cmd/kubeadm/app/util"
	configutil "k8s.io/kubernetes/cmd/kubeadm/app/util/config"
	"k8s.io/kubernetes/cmd/kubeadm/app/util/pkiutil"

	"github.com/edgeadm/edgeadm/manifests"
	"github.com/edgeadm/edgeadm/pkg/addon"
	"github.com/edgeadm/edgeadm/pkg/state"
	"github.com/edgeadm/edgeadm/pkg/tunnel"
)

// master is a kubeadm master in a temporary folder whose API server addon
// configured, and a fake cluster holding what addon left there.
type master struct {
	root        string
	paths       tunnel.Paths
	original    []byte // kube-apiserver.yaml before addon
	clusterConf string // kubeadm-config's ClusterConfiguration before addon
	client      *fake.Clientset
	waiter      *fakeWaiter
}

func apiServerPod(node, endpoint string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "kube-apiserver-" + node, Namespace: "kube-system",
			Labels:      map[string]string{"component": "kube-apiserver", "tier": "control-plane"},
			Annotations: map[string]string{kubeadmconstants.KubeAPIServerAdvertiseAddressEndpointAnnotationKey: endpoint}},
		Spec: corev1.PodSpec{NodeName: node},
	}
}

// configuredMaster is cp1 (192.168.10.2:6443) after addon --tunnel;
// noted are the masters addon's note lists, pods the API server pods.
func configuredMaster(t *testing.T, noted []addon.NoteMaster, pods ...*corev1.Pod) *master {
	t.Helper()
	root := t.TempDir()
	p := tunnel.DefaultPaths()
	v := &kubeadmapiv1.ClusterConfiguration{KubernetesVersion: "v1.37.1"}
	kubeadmscheme.Scheme.Default(v)
	cfg := &kubeadmapi.ClusterConfiguration{}
	if err := kubeadmscheme.Scheme.Convert(v, cfg, nil); err != nil {
		t.Fatal(err)
	}
	spec := controlplane.GetStaticPodSpecs(cfg, &kubeadmapi.APIEndpoint{AdvertiseAddress: "192.168.10.2", BindPort: 6443}, nil)["kube-apiserver"]
	orig, err := kubeadmutil.MarshalToYaml(&spec, corev1.SchemeGroupVersion)
	if err != nil {
		t.Fatal(err)
	}
	manifest := filepath.Join(root, p.APIServerManifest())
	if err := os.MkdirAll(filepath.Dir(manifest), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(manifest, orig, 0o600); err != nil {
		t.Fatal(err)
	}
	// What addon did on the master, with the same pieces.
	m := tunnel.Master{Root: root, Paths: p}
	ca, key, err := pkiutil.NewCertificateAuthority(&pkiutil.CertConfig{Config: certutil.Config{CommonName: "kubernetes"}})
	if err != nil {
		t.Fatal(err)
	}
	kc, err := tunnel.ServerKubeconfig(ca, key, "https://192.168.10.2:6443", time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	pod, err := manifests.TunnelServerPod(manifests.TunnelValues{Values: manifests.Values{MasterPublicAddr: "203.0.113.10:6443"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.WriteServer(kc, pod); err != nil {
		t.Fatal(err)
	}
	if changed, err := m.Configure(); err != nil || !changed {
		t.Fatalf("configure: %v, %v", changed, err)
	}
	doc, err := configutil.MarshalKubeadmConfigObject(cfg, kubeadmapiv1.SchemeGroupVersion)
	if err != nil {
		t.Fatal(err)
	}
	patched, _, err := tunnel.PatchClusterConfiguration(doc, p)
	if err != nil {
		t.Fatal(err)
	}
	note := addon.TunnelNote{Masters: noted, ClusterConfigurationBefore: string(doc), ClusterConfigurationAfter: string(patched)}
	objs := []runtime.Object{
		&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: kubeadmconstants.KubeadmConfigConfigMap, Namespace: "kube-system"},
			Data: map[string]string{kubeadmconstants.ClusterConfigurationConfigMapKey: string(patched)}},
		&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: state.Name, Namespace: state.Namespace},
			Data: map[string]string{state.ConfigKey: "{}\n", state.OwnershipKey: "objects: []\n"}},
	}
	for _, p := range pods {
		objs = append(objs, p)
	}
	client := fake.NewClientset(objs...)
	if err := addon.SaveTunnelNote(context.Background(), client, note); err != nil {
		t.Fatal(err)
	}
	return &master{root: root, paths: p, original: orig, clusterConf: string(doc), client: client, waiter: &fakeWaiter{}}
}

var cp1 = addon.NoteMaster{Node: "cp1", Endpoint: "192.168.10.2:6443"}
var cp2 = addon.NoteMaster{Node: "cp2", Endpoint: "192.168.10.3:6443"}

func (h *master) undo(t *testing.T, dry bool) (*TunnelResult, error) {
	t.Helper()
	ctx := context.Background()
	note, err := addon.GetTunnelNote(ctx, h.client)
	if err != nil || note == nil {
		t.Fatalf("note %v, %v", note, err)
	}
	return undoTunnel(ctx, h.client, addon.TunnelOptions{Root: h.root, Waiter: h.waiter}, note, dry, io.Discard)
}

func (h *master) kubeadmConfig(t *testing.T) string {
	t.Helper()
	cm, err := h.client.CoreV1().ConfigMaps("kube-system").Get(context.Background(), kubeadmconstants.KubeadmConfigConfigMap, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return cm.Data[kubeadmconstants.ClusterConfigurationConfigMapKey]
}

func (h *master) note(t *testing.T) *addon.TunnelNote {
	t.Helper()
	n, err := addon.GetTunnelNote(context.Background(), h.client)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func (h *master) exists(p string) bool {
	_, err := os.Stat(filepath.Join(h.root, p))
	return err == nil
}

type fakeWaiter struct {
	calls    []string
	readyErr error
}

func (w *fakeWaiter) ProxyServerReady(_ context.Context, m addon.MasterInfo) error {
	w.calls = append(w.calls, "proxy-server-ready "+m.Node)
	return nil
}

func (w *fakeWaiter) APIServerReady(_ context.Context, m addon.MasterInfo, configured bool) error {
	w.calls = append(w.calls, "apiserver-ready "+m.Node)
	if configured {
		return errors.New("detach never waits for a configured API server")
	}
	return w.readyErr
}

func (w *fakeWaiter) Before(_ context.Context, m addon.MasterInfo) (addon.Reachable, error) {
	w.calls = append(w.calls, "before "+m.Node)
	return addon.Reachable{}, nil
}

func (w *fakeWaiter) Verify(_ context.Context, m addon.MasterInfo, _ addon.Reachable) error {
	w.calls = append(w.calls, "verify "+m.Node)
	return nil
}

func TestUndoTunnelRestoresTheMasterExactly(t *testing.T) {
	h := configuredMaster(t, []addon.NoteMaster{cp1}, apiServerPod("cp1", cp1.Endpoint))
	p := h.paths
	res, err := h.undo(t, false)
	if err != nil {
		t.Fatal(err)
	}
	if res.LocalMaster != "cp1" || !res.Restored || res.KubeadmConfig != "restored" || len(res.PendingMasters) != 0 {
		t.Errorf("result %+v", res)
	}
	got, err := os.ReadFile(filepath.Join(h.root, p.APIServerManifest()))
	if err != nil || !bytes.Equal(got, h.original) {
		t.Fatalf("the manifest is not the original byte for byte (%v)", err)
	}
	for _, f := range []string{p.ServerManifest(), p.ServerKubeconfig, p.APIServerBackup(), p.EgressConfig, p.BackupDir} {
		if h.exists(f) {
			t.Errorf("%s left behind", f)
		}
	}
	if h.kubeadmConfig(t) != h.clusterConf {
		t.Errorf("kubeadm-config is not the original:\n%s", h.kubeadmConfig(t))
	}
	if n := h.note(t); n != nil {
		t.Errorf("note left: %+v", n)
	}
	if strings.Join(h.waiter.calls, ",") != "apiserver-ready cp1" {
		t.Errorf("waits %v", h.waiter.calls)
	}
	// Again: nothing left to do, no error.
	if _, err := undoTunnel(context.Background(), h.client, addon.TunnelOptions{Root: h.root, Waiter: h.waiter}, &addon.TunnelNote{}, false, io.Discard); err != nil {
		t.Errorf("second run: %v", err)
	}
}

func TestUndoTunnelStopsWhileOtherMastersUseIt(t *testing.T) {
	h := configuredMaster(t, []addon.NoteMaster{cp1, cp2}, apiServerPod("cp1", cp1.Endpoint), apiServerPod("cp2", cp2.Endpoint))
	res, err := h.undo(t, false)
	if !errors.Is(err, ErrTunnelMasters) || !strings.Contains(err.Error(), "cp2") || !strings.Contains(err.Error(), "this master (cp1) is restored") {
		t.Fatalf("err %v", err)
	}
	if !res.Restored {
		t.Error("the local master was not restored")
	}
	got, _ := os.ReadFile(filepath.Join(h.root, h.paths.APIServerManifest()))
	if !bytes.Equal(got, h.original) {
		t.Error("the local manifest is not the original")
	}
	if h.kubeadmConfig(t) == h.clusterConf {
		t.Error("kubeadm-config was restored while cp2 still uses the tunnel")
	}
	if n := h.note(t); n == nil || len(n.Masters) != 1 || n.Masters[0] != cp2 {
		t.Errorf("note %+v", n)
	}
}

func TestUndoTunnelAwayFromTheMastersChangesNothing(t *testing.T) {
	h := configuredMaster(t, []addon.NoteMaster{cp1}, apiServerPod("cp1", cp1.Endpoint))
	// This host is not a master: no manifest.
	if err := os.RemoveAll(filepath.Join(h.root, "etc")); err != nil {
		t.Fatal(err)
	}
	kc := h.kubeadmConfig(t)
	h.client.ClearActions()
	_, err := h.undo(t, false)
	if !errors.Is(err, ErrTunnelMasters) || !strings.Contains(err.Error(), "nothing was changed") || !strings.Contains(err.Error(), "as root on each of them") {
		t.Fatalf("err %v", err)
	}
	for _, a := range h.client.Actions() {
		if a.GetVerb() != "get" && a.GetVerb() != "list" {
			t.Errorf("the cluster was written: %s %s", a.GetVerb(), a.GetResource())
		}
	}
	if h.kubeadmConfig(t) != kc {
		t.Error("kubeadm-config changed")
	}
}

func TestUndoTunnelSkipsAMasterThatIsGone(t *testing.T) {
	h := configuredMaster(t, []addon.NoteMaster{cp1, cp2}, apiServerPod("cp1", cp1.Endpoint))
	res, err := h.undo(t, false)
	if err != nil || !res.Restored || res.KubeadmConfig != "restored" {
		t.Fatalf("%+v, %v", res, err)
	}
}

// kubeadm upgrade rewrote kubeadm-config since addon: only the tunnel's
// entries go, the rest of the new document stays.
func TestUndoTunnelUnpatchesAChangedKubeadmConfig(t *testing.T) {
	h := configuredMaster(t, []addon.NoteMaster{cp1}, apiServerPod("cp1", cp1.Endpoint))
	upgraded := strings.Replace(h.kubeadmConfig(t), "kubernetesVersion: v1.37.1", "kubernetesVersion: v1.37.2", 1)
	if upgraded == h.kubeadmConfig(t) {
		t.Fatal("no kubernetesVersion line to change")
	}
	cm, _ := h.client.CoreV1().ConfigMaps("kube-system").Get(context.Background(), kubeadmconstants.KubeadmConfigConfigMap, metav1.GetOptions{})
	cm.Data[kubeadmconstants.ClusterConfigurationConfigMapKey] = upgraded
	if _, err := h.client.CoreV1().ConfigMaps("kube-system").Update(context.Background(), cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	res, err := h.undo(t, false)
	if err != nil || !strings.HasPrefix(res.KubeadmConfig, "unpatched") {
		t.Fatalf("%+v, %v", res, err)
	}
	got := h.kubeadmConfig(t)
	if strings.Contains(got, tunnel.EgressFlag) || strings.Contains(got, tunnel.UDSVolume) || !strings.Contains(got, "v1.37.2") {
		t.Errorf("kubeadm-config:\n%s", got)
	}
}

func TestUndoTunnelDryRunChangesNothing(t *testing.T) {
	h := configuredMaster(t, []addon.NoteMaster{cp1}, apiServerPod("cp1", cp1.Endpoint))
	before := files(t, h.root)
	h.client.ClearActions()
	if _, err := h.undo(t, true); err != nil {
		t.Fatal(err)
	}
	if after := files(t, h.root); len(after) != len(before) {
		t.Errorf("files changed: %v -> %v", before, after)
	}
	for k, v := range before {
		if files(t, h.root)[k] != v {
			t.Errorf("%s changed", k)
		}
	}
	for _, a := range h.client.Actions() {
		if a.GetVerb() != "get" && a.GetVerb() != "list" {
			t.Errorf("the cluster was written: %s %s", a.GetVerb(), a.GetResource())
		}
	}
}

func TestUndoTunnelReportsAnAPIServerThatDoesNotComeBack(t *testing.T) {
	h := configuredMaster(t, []addon.NoteMaster{cp1}, apiServerPod("cp1", cp1.Endpoint))
	h.waiter.readyErr = errors.New("not Ready after 3m")
	_, err := h.undo(t, false)
	if err == nil || !strings.Contains(err.Error(), "original kube-apiserver manifest of cp1 is back") || !strings.Contains(err.Error(), "run detach again") {
		t.Fatalf("err %v", err)
	}
	// The note still lists cp1, so the next detach finishes the job.
	if n := h.note(t); n == nil || len(n.Masters) != 1 {
		t.Errorf("note %+v", n)
	}
	h.waiter.readyErr = nil
	if res, err := h.undo(t, false); err != nil || res.KubeadmConfig != "restored" {
		t.Errorf("second detach: %+v, %v", res, err)
	}
}

func files(t *testing.T, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	_ = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			b, _ := os.ReadFile(path)
			out[path] = string(b)
		}
		return err
	})
	return out
}
