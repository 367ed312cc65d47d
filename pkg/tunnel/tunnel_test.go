package tunnel

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apiserver/pkg/server/egressselector"
	certutil "k8s.io/client-go/util/cert"
	kubeadmapi "k8s.io/kubernetes/cmd/kubeadm/app/apis/kubeadm"
	kubeadmscheme "k8s.io/kubernetes/cmd/kubeadm/app/apis/kubeadm/scheme"
	kubeadmapiv1 "k8s.io/kubernetes/cmd/kubeadm/app/apis/kubeadm/v1beta4"
	"k8s.io/kubernetes/cmd/kubeadm/app/phases/controlplane"
	kubeadmutil "k8s.io/kubernetes/cmd/kubeadm/app/util"
	configutil "k8s.io/kubernetes/cmd/kubeadm/app/util/config"
	"k8s.io/kubernetes/cmd/kubeadm/app/util/config/strict"
	"k8s.io/kubernetes/cmd/kubeadm/app/util/pkiutil"
	"sigs.k8s.io/yaml"
)

// clusterConfiguration is a kubeadm ClusterConfiguration as kubeadm init
// defaults and uploads it.
func clusterConfiguration(t *testing.T) *kubeadmapi.ClusterConfiguration {
	t.Helper()
	v := &kubeadmapiv1.ClusterConfiguration{KubernetesVersion: "v1.37.1"}
	kubeadmscheme.Scheme.Default(v)
	cfg := &kubeadmapi.ClusterConfiguration{}
	if err := kubeadmscheme.Scheme.Convert(v, cfg, nil); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// kubeadmManifest is the kube-apiserver manifest kubeadm itself writes for
// cfg: its own pod spec and its own marshaller.
func kubeadmManifest(t *testing.T, cfg *kubeadmapi.ClusterConfiguration) []byte {
	t.Helper()
	pods := controlplane.GetStaticPodSpecs(cfg, &kubeadmapi.APIEndpoint{AdvertiseAddress: "192.168.10.2", BindPort: 6443}, nil)
	pod := pods["kube-apiserver"]
	b, err := kubeadmutil.MarshalToYaml(&pod, corev1.SchemeGroupVersion)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func uploadedClusterConfiguration(t *testing.T, cfg *kubeadmapi.ClusterConfiguration) []byte {
	t.Helper()
	b, err := configutil.MarshalKubeadmConfigObject(cfg, kubeadmapiv1.SchemeGroupVersion)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestEgressSelectorConfigurationLoadsInTheAPIServer(t *testing.T) {
	p := DefaultPaths()
	b, err := EgressSelectorConfiguration(p.UDSName())
	if err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(t.TempDir(), "egress.yaml")
	if err := os.WriteFile(f, b, 0o644); err != nil {
		t.Fatal(err)
	}
	// The API server's own loader and validation.
	cfg, err := egressselector.ReadEgressSelectorConfiguration(f)
	if err != nil {
		t.Fatalf("%v\n%s", err, b)
	}
	if errs := egressselector.ValidateEgressSelectorConfiguration(cfg); len(errs) > 0 {
		t.Fatalf("%v\n%s", errs.ToAggregate(), b)
	}
	if len(cfg.EgressSelections) != 1 {
		t.Fatalf("selections: %+v", cfg.EgressSelections)
	}
	s := cfg.EgressSelections[0]
	if s.Name != "cluster" || s.Connection.ProxyProtocol != "GRPC" || s.Connection.Transport.UDS == nil ||
		s.Connection.Transport.UDS.UDSName != "/etc/kubernetes/konnectivity-server/konnectivity-server.socket" {
		t.Errorf("selection %+v, transport %+v", s, s.Connection.Transport)
	}
	if _, err := EgressSelectorConfiguration(""); err == nil {
		t.Error("an empty socket path was accepted")
	}
}

func TestConfigureAPIServer(t *testing.T) {
	p := DefaultPaths()
	orig := kubeadmManifest(t, clusterConfiguration(t))
	out, changed, err := ConfigureAPIServer(orig, p)
	if err != nil || !changed {
		t.Fatalf("changed %v, %v", changed, err)
	}
	pod := &corev1.Pod{}
	if err := yaml.UnmarshalStrict(out, pod); err != nil {
		t.Fatal(err)
	}
	c := pod.Spec.Containers[0]
	if last := c.Command[len(c.Command)-1]; last != "--egress-selector-config-file=/etc/kubernetes/edgeadm/egress-selector-configuration.yaml" {
		t.Errorf("last flag %q", last)
	}
	mounts := map[string]corev1.VolumeMount{}
	for _, m := range c.VolumeMounts {
		mounts[m.Name] = m
	}
	if m := mounts[EgressConfigVolume]; m.MountPath != p.EgressConfig || !m.ReadOnly {
		t.Errorf("egress mount %+v", m)
	}
	if m := mounts[UDSVolume]; m.MountPath != p.UDSDir || m.ReadOnly {
		t.Errorf("socket mount %+v", m)
	}
	vols := map[string]*corev1.HostPathVolumeSource{}
	for _, v := range pod.Spec.Volumes {
		vols[v.Name] = v.HostPath
	}
	if v := vols[UDSVolume]; v == nil || v.Path != p.UDSDir || *v.Type != corev1.HostPathDirectoryOrCreate {
		t.Errorf("socket volume %+v", v)
	}
	if v := vols[EgressConfigVolume]; v == nil || v.Path != p.EgressConfig || *v.Type != corev1.HostPathFile {
		t.Errorf("egress volume %+v", v)
	}
	// Only the change, in kubeadm's own layout: 1 flag line, 3 + 2 mount
	// lines, 2 volumes of 4 lines; every other line is the original's.
	if d := lineDiff(orig, out); d != 1+3+2+4+4 {
		t.Errorf("%d lines added, want 14:\n%s", d, out)
	}

	again, changed, err := ConfigureAPIServer(out, p)
	if err != nil || changed || !bytes.Equal(again, out) {
		t.Errorf("second run: changed %v, %v", changed, err)
	}
	if ok, err := IsConfigured(out, p); !ok || err != nil {
		t.Errorf("IsConfigured(configured) = %v, %v", ok, err)
	}
	if ok, err := IsConfigured(orig, p); ok || err != nil {
		t.Errorf("IsConfigured(original) = %v, %v", ok, err)
	}
}

// lineDiff counts lines of b that a does not have (a is a subset of b here).
func lineDiff(a, b []byte) int {
	have := map[string]int{}
	for _, l := range strings.Split(string(a), "\n") {
		have[l]++
	}
	n := 0
	for _, l := range strings.Split(string(b), "\n") {
		if have[l] > 0 {
			have[l]--
			continue
		}
		n++
	}
	return n
}

func TestConfigureAPIServerRefuses(t *testing.T) {
	p := DefaultPaths()
	orig := string(kubeadmManifest(t, clusterConfiguration(t)))
	foreign := strings.Replace(orig, "    - --allow-privileged=true\n", "    - --allow-privileged=true\n    - --egress-selector-config-file=/etc/mine.yaml\n", 1)
	if foreign == orig {
		t.Fatal("test manifest has no --allow-privileged line")
	}
	for name, tt := range map[string]struct{ manifest, want string }{
		"foreign egress":   {foreign, "already runs with --egress-selector-config-file=/etc/mine.yaml, which edgeadm did not set"},
		"unknown field":    {strings.Replace(orig, "spec:\n", "spec:\n  surprise: 1\n", 1), "not a Pod edgeadm can edit without losing parts of it"},
		"no apiserver":     {strings.ReplaceAll(orig, "name: kube-apiserver\n", "name: other\n"), `has no container named "kube-apiserver"`},
		"empty":            {"", "manifest is empty"},
		"not a pod":        {"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n", `holds a "ConfigMap", not a Pod`},
		"volume collision": {strings.Replace(orig, "  volumes:\n", "  volumes:\n  - hostPath:\n      path: /elsewhere\n    name: konnectivity-uds\n", 1), `already has a volume "konnectivity-uds" that is not hostPath`},
	} {
		_, _, err := ConfigureAPIServer([]byte(tt.manifest), p)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: got %v, want %q", name, err, tt.want)
		}
		if err != nil && !strings.Contains(err.Error(), "--tunnel=false") && name != "empty" && name != "not a pod" {
			t.Errorf("%s: the error does not name the way out: %v", name, err)
		}
	}
}

// TestKubeadmUpgradeKeepsTheChange: the patched ClusterConfiguration, read
// back and turned into a manifest by kubeadm's own code (as kubeadm upgrade
// does), has the flag and mounts ConfigureAPIServer adds, so configuring
// that manifest again changes nothing.
func TestKubeadmUpgradeKeepsTheChange(t *testing.T) {
	p := DefaultPaths()
	cfg := clusterConfiguration(t)
	doc := uploadedClusterConfiguration(t, cfg)
	patched, changed, err := PatchClusterConfiguration(doc, p)
	if err != nil || !changed {
		t.Fatalf("changed %v, %v", changed, err)
	}
	again, changed, err := PatchClusterConfiguration(patched, p)
	if err != nil || changed || !bytes.Equal(again, patched) {
		t.Errorf("second patch: changed %v, %v", changed, err)
	}
	upgraded, err := loadAsKubeadmUpgrade(t, patched)
	if err != nil {
		t.Fatalf("kubeadm does not load the patched document: %v\n%s", err, patched)
	}
	regenerated := kubeadmManifest(t, upgraded)
	if ok, err := IsConfigured(regenerated, p); !ok || err != nil {
		t.Fatalf("kubeadm's regenerated manifest lacks the flag (%v):\n%s", err, regenerated)
	}
	if _, changed, err := ConfigureAPIServer(regenerated, p); err != nil || changed {
		t.Errorf("kubeadm's regenerated manifest differs from the configured one: changed %v, %v\n%s", changed, err, regenerated)
	}

	back, changed, err := UnpatchClusterConfiguration(patched, p)
	if err != nil || !changed {
		t.Fatalf("unpatch: changed %v, %v", changed, err)
	}
	unpatched, err := loadAsKubeadmUpgrade(t, back)
	if err != nil {
		t.Fatal(err)
	}
	if ok, _ := IsConfigured(kubeadmManifest(t, unpatched), p); ok {
		t.Errorf("the flag survived unpatching:\n%s", back)
	}
	if _, changed, _ := UnpatchClusterConfiguration(doc, p); changed {
		t.Error("unpatching an unpatched document changed it")
	}
}

// loadAsKubeadmUpgrade reads kubeadm-config's ClusterConfiguration the way
// kubeadm upgrade does (util/config/cluster.go): strict check, then decode.
func loadAsKubeadmUpgrade(t *testing.T, doc []byte) (*kubeadmapi.ClusterConfiguration, error) {
	t.Helper()
	if err := strict.VerifyUnmarshalStrict([]*runtime.Scheme{kubeadmscheme.Scheme},
		kubeadmapiv1.SchemeGroupVersion.WithKind("ClusterConfiguration"), doc); err != nil {
		t.Errorf("kubeadm would warn about the document: %v", err)
	}
	cfg := &kubeadmapi.ClusterConfiguration{}
	if err := runtime.DecodeInto(kubeadmscheme.Codecs.UniversalDecoder(), doc, cfg); err != nil {
		return nil, err
	}
	return cfg, nil
}

func TestPatchClusterConfigurationRefuses(t *testing.T) {
	p := DefaultPaths()
	for name, tt := range map[string]struct{ doc, want string }{
		"v1beta3":         {"apiVersion: kubeadm.k8s.io/v1beta3\nkind: ClusterConfiguration\n", "edgeadm edits only kubeadm.k8s.io/v1beta4 and kubeadm.k8s.io/v1"},
		"foreign egress":  {"apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\napiServer:\n  extraArgs:\n  - name: egress-selector-config-file\n    value: /etc/mine.yaml\n", "which edgeadm did not set"},
		"volume conflict": {"apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\napiServer:\n  extraVolumes:\n  - name: konnectivity-uds\n    hostPath: /x\n    mountPath: /x\n", `already has "konnectivity-uds" for another path`},
		"not yaml":        {"{", "does not parse"},
	} {
		_, _, err := PatchClusterConfiguration([]byte(tt.doc), p)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: got %v, want %q", name, err, tt.want)
		}
	}
}

func TestMasterConfigureAndRestore(t *testing.T) {
	root := t.TempDir()
	m := Master{Root: root, Paths: DefaultPaths()}
	p := m.Paths
	orig := kubeadmManifest(t, clusterConfiguration(t))
	manifest := filepath.Join(root, p.APIServerManifest())
	if err := os.MkdirAll(filepath.Dir(manifest), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(manifest, orig, 0o600); err != nil {
		t.Fatal(err)
	}
	if changed, err := m.Configure(); err != nil || !changed {
		t.Fatalf("configure: changed %v, %v", changed, err)
	}
	// The manifests folder holds the manifest only: no backup, no temp file
	// the kubelet could run.
	names := dirNames(t, filepath.Dir(manifest))
	if len(names) != 1 || names[0] != "kube-apiserver.yaml" {
		t.Errorf("manifests folder holds %v", names)
	}
	backup, err := os.ReadFile(filepath.Join(root, p.APIServerBackup()))
	if err != nil || !bytes.Equal(backup, orig) {
		t.Fatalf("backup differs from the original (%v)", err)
	}
	assertMode(t, filepath.Join(root, p.APIServerBackup()), 0o600)
	assertMode(t, filepath.Join(root, p.BackupDir), 0o700|os.ModeDir)
	assertMode(t, manifest, 0o600)
	if _, err := os.Stat(filepath.Join(root, p.EgressConfig)); err != nil {
		t.Errorf("no egress file: %v", err)
	}
	if fi, err := os.Stat(filepath.Join(root, p.UDSDir)); err != nil || !fi.IsDir() {
		t.Errorf("no socket folder: %v", err)
	}
	configured, _ := os.ReadFile(manifest)

	// Twice: nothing changes, the backup stays the original.
	if changed, err := m.Configure(); err != nil || changed {
		t.Fatalf("second configure: changed %v, %v", changed, err)
	}
	if now, _ := os.ReadFile(manifest); !bytes.Equal(now, configured) {
		t.Error("the second configure rewrote the manifest")
	}
	if b, _ := os.ReadFile(filepath.Join(root, p.APIServerBackup())); !bytes.Equal(b, orig) {
		t.Error("the second configure overwrote the backup with the configured manifest")
	}

	if changed, err := m.Restore(); err != nil || !changed {
		t.Fatalf("restore: changed %v, %v", changed, err)
	}
	if now, _ := os.ReadFile(manifest); !bytes.Equal(now, orig) {
		t.Errorf("restored manifest differs from the original")
	}
	assertMode(t, manifest, 0o600)
	for _, gone := range []string{p.APIServerBackup(), p.EgressConfig, p.BackupDir, p.UDSDir} {
		if _, err := os.Stat(filepath.Join(root, gone)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s left after restore (%v)", gone, err)
		}
	}
	if changed, err := m.Restore(); err != nil || changed {
		t.Errorf("second restore: changed %v, %v", changed, err)
	}
}

func TestMasterRefusesWithoutBackup(t *testing.T) {
	root := t.TempDir()
	m := Master{Root: root, Paths: DefaultPaths()}
	p := m.Paths
	if _, err := m.Configure(); err == nil || !strings.Contains(err.Error(), "is not a kubeadm master") {
		t.Errorf("no manifest: %v", err)
	}
	configured, _, err := ConfigureAPIServer(kubeadmManifest(t, clusterConfiguration(t)), p)
	if err != nil {
		t.Fatal(err)
	}
	manifest := filepath.Join(root, p.APIServerManifest())
	_ = os.MkdirAll(filepath.Dir(manifest), 0o700)
	if err := os.WriteFile(manifest, configured, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Restore(); err == nil || !strings.Contains(err.Error(), "there is no backup") {
		t.Errorf("restore without backup: %v", err)
	}
	// A configured manifest without its backup: nothing is changed.
	if err := os.WriteFile(manifest, append(configured, []byte("# edited\n")...), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Configure(); err == nil || !strings.Contains(err.Error(), "cannot be read") {
		t.Errorf("configure without backup: %v", err)
	}
}

func TestCheckControlPlane(t *testing.T) {
	for _, tt := range []struct {
		cp   ControlPlane
		want string // "" is accepted
	}{
		{ControlPlane{ServerVersion: "v1.37.1", Kubeadm: true, StaticPodManifest: true}, ""},
		{ControlPlane{ServerVersion: "v1.37.1+k3s1"}, "--egress-selector-mode"},
		{ControlPlane{ServerVersion: "v1.37.1-eks-1234"}, "L3 VPN"},
		{ControlPlane{ServerVersion: "v1.37.1-gke.100"}, "L3 VPN"},
		{ControlPlane{ServerVersion: "v1.37.1"}, "not built by kubeadm"},
		{ControlPlane{ServerVersion: "v1.37.1", Kubeadm: true}, "run addon on a kubeadm master"},
	} {
		err := CheckControlPlane(tt.cp)
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("%+v: %v", tt.cp, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "--tunnel=false")):
			t.Errorf("%+v: got %v, want %q and --tunnel=false", tt.cp, err, tt.want)
		}
	}
}

func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var n []string
	for _, e := range es {
		n = append(n, e.Name())
	}
	return n
}

func assertMode(t *testing.T, path string, want os.FileMode) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode() & (os.ModePerm | os.ModeDir); got != want {
		t.Errorf("%s: mode %v, want %v", path, got, want)
	}
}

func TestServerFiles(t *testing.T) {
	root := t.TempDir()
	m := Master{Root: root, Paths: DefaultPaths()}
	p := m.Paths
	pod := []byte("apiVersion: v1\nkind: Pod\nmetadata:\n  name: konnectivity-server\n  labels:\n    app.kubernetes.io/managed-by: edgeadm\n")
	if changed, err := m.WriteServer([]byte("kubeconfig"), pod); err != nil || !changed {
		t.Fatalf("write: %v, %v", changed, err)
	}
	// The key's file and folder are the owner's alone.
	assertMode(t, filepath.Join(root, p.ServerKubeconfig), 0o600)
	assertMode(t, filepath.Join(root, filepath.Dir(p.ServerKubeconfig)), 0o700|os.ModeDir)
	assertMode(t, filepath.Join(root, p.ServerManifest()), 0o600)
	if !m.HasServer() {
		t.Error("HasServer after WriteServer")
	}
	if changed, err := m.WriteServer(nil, pod); err != nil || changed {
		t.Errorf("second write: %v, %v", changed, err)
	}
	if changed, err := m.RemoveServer(); err != nil || !changed {
		t.Fatalf("remove: %v, %v", changed, err)
	}
	for _, gone := range []string{p.ServerManifest(), p.ServerKubeconfig, filepath.Dir(p.ServerKubeconfig)} {
		if _, err := os.Stat(filepath.Join(root, gone)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s left (%v)", gone, err)
		}
	}
	// A server pod edgeadm did not write is neither replaced nor removed.
	theirs := []byte("apiVersion: v1\nkind: Pod\nmetadata:\n  name: konnectivity-server\n")
	if err := os.WriteFile(filepath.Join(root, p.ServerManifest()), theirs, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := m.WriteServer(nil, pod); err == nil || !strings.Contains(err.Error(), "was not written by edgeadm") {
		t.Errorf("overwrote the user's server pod: %v", err)
	}
	if _, err := m.RemoveServer(); err == nil {
		t.Error("removed the user's server pod")
	}
	if b, _ := os.ReadFile(filepath.Join(root, p.ServerManifest())); !bytes.Equal(b, theirs) {
		t.Error("the user's server pod changed")
	}
}

func TestServerKubeconfigCurrent(t *testing.T) {
	root := t.TempDir()
	m := Master{Root: root, Paths: DefaultPaths()}
	ca, key, err := pkiutil.NewCertificateAuthority(&pkiutil.CertConfig{Config: certutil.Config{CommonName: "kubernetes"}})
	if err != nil {
		t.Fatal(err)
	}
	other, _, _ := pkiutil.NewCertificateAuthority(&pkiutil.CertConfig{Config: certutil.Config{CommonName: "other"}})
	now := time.Now()
	if m.ServerKubeconfigCurrent(ca, now) {
		t.Error("no kubeconfig is current")
	}
	kc, err := ServerKubeconfig(ca, key, "https://192.168.10.2:6443", now.Add(365*24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.WriteServer(kc, []byte("x")); err != nil {
		t.Fatal(err)
	}
	if !m.ServerKubeconfigCurrent(ca, now) {
		t.Error("a fresh kubeconfig is not current")
	}
	if m.ServerKubeconfigCurrent(other, now) {
		t.Error("a kubeconfig signed by another CA is current")
	}
	if m.ServerKubeconfigCurrent(ca, now.Add(300*24*time.Hour)) {
		t.Error("a kubeconfig 65 days from expiry is current")
	}
}
