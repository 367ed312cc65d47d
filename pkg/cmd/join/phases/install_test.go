package phases

import (
	"encoding/json"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/edgeadm/edgeadm/pkg/host"
	"github.com/edgeadm/edgeadm/pkg/installpkg"
)

func TestLacksCapSysResource(t *testing.T) {
	for status, want := range map[string]bool{
		"CapBnd:\t000001ffffffffff\n": false,
		"CapBnd:\t000001fffeffffff\n": true,
		"Name: systemd\n":             false,
	} {
		f := host.NewFake()
		f.PutFile("/proc/1/status", []byte(status), 0o444)
		if got := LacksCapSysResource(f); got != want {
			t.Errorf("%q: %v, want %v", status, got, want)
		}
	}
}

// repoFile reads a file of the repository's install-pkg folder.
func repoFile(t *testing.T, name string) string {
	t.Helper()
	_, self, _, _ := runtime.Caller(0)
	data, err := os.ReadFile(filepath.Join(filepath.Dir(self), "../../../../install-pkg", name))
	if err != nil {
		t.Skipf("install-pkg/%s is not in this tree: %v", name, err)
	}
	return string(data)
}

// fakePackage stages files as an unpacked package would have them.
func fakePackage(t *testing.T, files map[string]string) *installpkg.Package {
	t.Helper()
	root := t.TempDir()
	m := &installpkg.Manifest{FormatVersion: 1, KubernetesVersion: "v1.37.1", Arch: "amd64"}
	for name, data := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
		mode := installpkg.FileMode(0o644)
		if strings.HasPrefix(name, "bin/") || strings.HasPrefix(name, "cni/bin/") {
			mode = 0o755
		}
		m.Files = append(m.Files, installpkg.File{Path: name, Mode: mode, SHA256: strings.Repeat("0", 64)})
	}
	return &installpkg.Package{Root: root, Manifest: m}
}

// The units and drop-in the install package really ships fit what join
// installs and writes: a contract test between install-pkg/ and join.
func TestRepositoryUnitsFitJoin(t *testing.T) {
	pkg := fakePackage(t, map[string]string{
		"bin/kubelet": "", "bin/containerd": "", "bin/containerd-shim-runc-v2": "", "bin/ctr": "", "bin/runc": "", "bin/crictl": "", "bin/kubectl": "",
		"cni/bin/bridge": "", "images/pause.tar": "", "README.md": "",
		"systemd/containerd.service":                repoFile(t, "systemd/containerd.service"),
		"systemd/kubelet.service":                   repoFile(t, "systemd/kubelet.service"),
		"systemd/kubelet.service.d/10-edgeadm.conf": repoFile(t, "systemd/kubelet.service.d/10-edgeadm.conf"),
		"config/containerd.toml":                    repoFile(t, "config/containerd.toml"),
	})
	p := host.DefaultPaths("/")
	plan, err := InstallPlan(pkg, p)
	if err != nil {
		t.Fatal(err)
	}
	dst := map[string]bool{}
	for _, f := range plan.Files {
		dst[f.Dst] = true
	}
	for _, want := range []string{"/usr/local/bin/kubelet", "/usr/local/bin/containerd-shim-runc-v2", "/opt/cni/bin/bridge",
		"/etc/systemd/system/kubelet.service", "/etc/systemd/system/kubelet.service.d/10-edgeadm.conf", "/etc/containerd/config.toml"} {
		if !dst[want] {
			t.Errorf("plan does not install %s", want)
		}
	}
	if dst["/usr/local/bin/pause.tar"] || len(plan.Files) != 12 {
		t.Errorf("plan installs %d files: %+v", len(plan.Files), plan.Files)
	}
	if err := CheckUnits(plan, p, func(string) bool { return false }); err != nil {
		t.Fatalf("the repository's units do not fit join: %v", err)
	}
}

func TestCheckUnitsRefusesMisfits(t *testing.T) {
	p := host.DefaultPaths("/")
	base := map[string]string{
		"bin/kubelet": "", "bin/containerd": "",
		"systemd/containerd.service": "[Service]\nExecStart=/usr/local/bin/containerd\n",
		"systemd/kubelet.service":    "[Service]\nExecStart=/usr/local/bin/kubelet --kubeconfig=/etc/kubernetes/kubelet.conf --bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf --config=/var/lib/kubelet/config.yaml\nEnvironmentFile=-/var/lib/kubelet/kubeadm-flags.env\n",
	}
	plan, err := InstallPlan(fakePackage(t, base), p)
	if err != nil {
		t.Fatal(err)
	}
	if err := CheckUnits(plan, p, func(string) bool { return false }); err != nil {
		t.Fatalf("a fitting package refused: %v", err)
	}
	for name, change := range map[string][2]string{
		"binary elsewhere": {"systemd/containerd.service", "[Service]\nExecStart=/usr/bin/containerd\n"},
		"no flags file":    {"systemd/kubelet.service", "[Service]\nExecStart=/usr/local/bin/kubelet\n"},
	} {
		files := map[string]string{}
		for k, v := range base {
			files[k] = v
		}
		files[change[0]] = change[1]
		plan, _ := InstallPlan(fakePackage(t, files), p)
		if err := CheckUnits(plan, p, func(string) bool { return false }); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	delete(base, "systemd/kubelet.service")
	if _, err := InstallPlan(fakePackage(t, base), p); err == nil || !strings.Contains(err.Error(), "kubelet.service") {
		t.Errorf("a package without the kubelet unit: %v", err)
	}
}

func TestBridgeConflist(t *testing.T) {
	var conf struct {
		Plugins []struct {
			Type string
			IPAM struct {
				Ranges [][]struct{ Subnet string }
				Routes []struct{ Dst string }
			}
		}
	}
	if err := json.Unmarshal(BridgeConflist([]string{"10.244.3.0/24", "fd00:10:244:3::/64"}), &conf); err != nil {
		t.Fatal(err)
	}
	b := conf.Plugins[0]
	if b.Type != "bridge" || b.IPAM.Ranges[0][0].Subnet != "10.244.3.0/24" || b.IPAM.Ranges[1][0].Subnet != "fd00:10:244:3::/64" ||
		b.IPAM.Routes[0].Dst != "0.0.0.0/0" || b.IPAM.Routes[1].Dst != "::/0" || conf.Plugins[1].Type != "portmap" {
		t.Fatalf("%+v", conf)
	}
}

func TestNodeKubeletConfigKeepsTheClusterAndAddsTheSocket(t *testing.T) {
	f := host.NewFake()
	out, static, err := NodeKubeletConfig([]byte("kind: KubeletConfiguration\nclusterDNS: [10.96.0.10]\nstaticPodPath: /etc/kubernetes/manifests\n"), f.P, f)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"containerRuntimeEndpoint: unix:///run/containerd/containerd.sock", "- 10.96.0.10", "kind: KubeletConfiguration"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("config lacks %q:\n%s", want, out)
		}
	}
	if static != "/etc/kubernetes/manifests" {
		t.Errorf("static pod dir %q", static)
	}
	f.PutFile("/run/systemd/resolve/resolv.conf", []byte("nameserver 1.1.1.1\n"), 0o644)
	out, _, _ = NodeKubeletConfig([]byte("kind: KubeletConfiguration\ncontainerRuntimeEndpoint: unix:///x.sock\n"), f.P, f)
	if !strings.Contains(string(out), "resolvConf: /run/systemd/resolve/resolv.conf") || !strings.Contains(string(out), "unix:///x.sock") {
		t.Errorf("config:\n%s", out)
	}
}

func TestKubeletFlags(t *testing.T) {
	got := string(KubeletFlags("edge-1", "198.18.0.10", map[string]string{"b": "2", "a": "1"}))
	if !strings.HasSuffix(got, `KUBELET_KUBEADM_ARGS="--hostname-override=edge-1 --node-ip=198.18.0.10 --node-labels=a=1,b=2"`+"\n") {
		t.Fatalf("%q", got)
	}
}

func TestHostsEntryOutsideBlock(t *testing.T) {
	data := []byte("127.0.0.1 localhost\n# 1.1.1.1 kubernetes.default\n# BEGIN edgeadm\n2.2.2.2 kubernetes.default\n# END edgeadm\n")
	if ip := hostsEntryOutsideBlock(data, KubernetesDefault); ip != "" {
		t.Errorf("found %q in a comment or edgeadm's own block", ip)
	}
	if ip := hostsEntryOutsideBlock([]byte("3.3.3.3 api Kubernetes.Default # x\n"), KubernetesDefault); ip != "3.3.3.3" {
		t.Errorf("got %q", ip)
	}
}

func TestCgroupV1HostGetsFailCgroupV1False(t *testing.T) {
	v1 := host.NewFake() // no /sys/fs/cgroup/cgroup.controllers: cgroup v1
	out, _, err := NodeKubeletConfig([]byte("kind: KubeletConfiguration\n"), v1.P, v1)
	if err != nil || !strings.Contains(string(out), "failCgroupV1: false") {
		t.Fatalf("v1 host: %v\n%s", err, out)
	}
	v2 := host.NewFake()
	v2.PutFile("/sys/fs/cgroup/cgroup.controllers", nil, 0o444)
	out, _, _ = NodeKubeletConfig([]byte("kind: KubeletConfiguration\n"), v2.P, v2)
	if strings.Contains(string(out), "failCgroupV1") {
		t.Fatalf("v2 host got failCgroupV1:\n%s", out)
	}
	// The cluster's explicit choice is kept, and refused on a v1 host.
	d := &fitData{h: v1}
	if w, err := KubeletConfigFits(d, []byte("kind: KubeletConfiguration\n")); err != nil || len(w) != 1 {
		t.Fatalf("absent on v1: %v, %v", w, err)
	}
	if _, err := KubeletConfigFits(d, []byte("kind: KubeletConfiguration\nfailCgroupV1: true\n")); err == nil {
		t.Fatal("failCgroupV1: true accepted on a v1 host")
	}
	if _, err := KubeletConfigFits(d, []byte("kind: ConfigMap\n")); err == nil {
		t.Fatal("a non-KubeletConfiguration accepted")
	}
}

// fitData is the part of Data KubeletConfigFits reads.
type fitData struct {
	Data
	h host.Host
}

func (f *fitData) Host() host.Host { return f.h }
