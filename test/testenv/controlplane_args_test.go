package testenv

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	kubeletconfig "k8s.io/kubelet/config/v1beta1"
	kubeadmapiv1 "k8s.io/kubernetes/cmd/kubeadm/app/apis/kubeadm/v1beta4"
	"k8s.io/kubernetes/cmd/kubeadm/app/componentconfigs"
	configutil "k8s.io/kubernetes/cmd/kubeadm/app/util/config"
)

func TestOptionsDefaultsAreKubeadms(t *testing.T) {
	o, err := ControlPlaneOptions{}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	want := ControlPlaneOptions{Flavour: KubeadmLike, ServiceCIDR: "10.96.0.0/12", PodCIDR: "10.244.0.0/16", DNSDomain: "cluster.local", APIServerPort: 6443}
	if o.Flavour != want.Flavour || o.ServiceCIDR != want.ServiceCIDR || o.PodCIDR != want.PodCIDR || o.DNSDomain != want.DNSDomain || o.APIServerPort != want.APIServerPort {
		t.Errorf("defaults = %+v, want %+v", o, want)
	}
	for _, bad := range []ControlPlaneOptions{
		{Flavour: "k3s"},
		{ServiceCIDR: "10.96.0.1"},
		{PodCIDR: "fd00::/64"},
		{APIServerPort: etcdClientPort},
		{APIServerPort: 70000},
		{DNSDomain: ".local."},
	} {
		if _, err := bad.withDefaults(); err == nil {
			t.Errorf("options %+v accepted, want an error", bad)
		}
	}
}

func TestControllersFlagTurnsOffExactlyTheBootstrapSigner(t *testing.T) {
	for _, f := range []Flavour{KubeadmLike, Bare} {
		if got := controllersFlag(f); got != "*,bootstrapsigner,tokencleaner" {
			t.Errorf("%s: --controllers=%s", f, got)
		}
	}
	got := strings.Split(controllersFlag(BareNoBootstrapSigner), ",")
	if !slices.Contains(got, "*") || !slices.Contains(got, "tokencleaner") || !slices.Contains(got, "-bootstrapsigner") || len(got) != 3 {
		t.Errorf("%s: --controllers=%v", BareNoBootstrapSigner, got)
	}
}

func TestComponentArgsFollowOptions(t *testing.T) {
	o, err := ControlPlaneOptions{Flavour: Bare, ServiceCIDR: "10.112.0.0/16", DNSDomain: "edge.test", APIServerPort: 16443}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	l := layout{dir: "/cp", pki: &PKI{Dir: "/cp/pki"}}
	api := apiserverArgs(l, o, "198.18.3.1")
	for _, want := range []string{
		"--secure-port=16443", "--advertise-address=198.18.3.1", "--bind-address=0.0.0.0",
		"--service-cluster-ip-range=10.112.0.0/16", "--service-account-issuer=https://kubernetes.default.svc.edge.test",
		"--enable-bootstrap-token-auth=true", "--authorization-mode=Node,RBAC", "--endpoint-reconciler-type=none",
		"--requestheader-client-ca-file=/cp/pki/front-proxy-ca.crt", "--proxy-client-cert-file=/cp/pki/front-proxy-client.crt",
	} {
		if !slices.Contains(api, want) {
			t.Errorf("apiserver args lack %s: %v", want, api)
		}
	}
	cm := controllerManagerArgs(l, o)
	for _, want := range []string{"--cluster-cidr=10.244.0.0/16", "--allocate-node-cidrs=true", "--service-cluster-ip-range=10.112.0.0/16", "--use-service-account-credentials=true", "--cluster-signing-key-file=/cp/pki/ca.key"} {
		if !slices.Contains(cm, want) {
			t.Errorf("controller-manager args lack %s: %v", want, cm)
		}
	}
}

// The kubeadm configuration is made by kubeadm's own defaulting offline: no
// version lookup, no CRI detection, no host address guessing.
func TestKubeadmInitConfigurationFollowsOptions(t *testing.T) {
	o, err := ControlPlaneOptions{ServiceCIDR: "10.112.0.0/16", DNSDomain: "edge.test", APIServerPort: 16443,
		KubeletConfig: func(k *kubeletconfig.KubeletConfiguration) { k.CgroupDriver = "cgroupfs" }}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	c := &ControlPlane{Net: &Network{Index: 7, CloudIP: netip.MustParseAddr("198.18.7.1")}, Options: o}
	cfg, err := kubeadmInitConfiguration(c)
	if err != nil {
		t.Fatal(err)
	}
	cc := cfg.ClusterConfiguration
	if cc.KubernetesVersion != KubernetesVersion || cc.ControlPlaneEndpoint != "198.18.7.1:16443" ||
		cc.Networking.ServiceSubnet != "10.112.0.0/16" || cc.Networking.PodSubnet != "10.244.0.0/16" || cc.Networking.DNSDomain != "edge.test" {
		t.Errorf("ClusterConfiguration = %+v", cc)
	}
	if cfg.LocalAPIEndpoint.AdvertiseAddress != "198.18.7.1" || cfg.LocalAPIEndpoint.BindPort != 16443 {
		t.Errorf("LocalAPIEndpoint = %+v", cfg.LocalAPIEndpoint)
	}
	kubelet := cc.ComponentConfigs[componentconfigs.KubeletGroup].Get().(*kubeletconfig.KubeletConfiguration)
	if !slices.Equal(kubelet.ClusterDNS, []string{"10.112.0.10"}) || kubelet.ClusterDomain != "edge.test" || kubelet.CgroupDriver != "cgroupfs" {
		t.Errorf("kubelet config: clusterDNS %v clusterDomain %q cgroupDriver %q", kubelet.ClusterDNS, kubelet.ClusterDomain, kubelet.CgroupDriver)
	}
	if hostIsCgroupV1() && (kubelet.FailCgroupV1 == nil || *kubelet.FailCgroupV1) {
		t.Errorf("cgroup v1 host but failCgroupV1 is not false")
	}
	yaml, err := configutil.MarshalKubeadmConfigObject(&cc, kubeadmapiv1.SchemeGroupVersion)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"kind: ClusterConfiguration", "apiVersion: kubeadm.k8s.io/v1beta4", "serviceSubnet: 10.112.0.0/16", "dnsDomain: edge.test"} {
		if !strings.Contains(string(yaml), want) {
			t.Errorf("kubeadm-config lacks %q:\n%s", want, yaml)
		}
	}
	if len(cfg.BootstrapTokens) != 1 || cfg.BootstrapTokens[0].Token == nil {
		t.Errorf("want the one default bootstrap token kubeadm init makes, got %v", cfg.BootstrapTokens)
	}
}

// Eviction past edge-controller's --max-disconnect (test/e2e) needs the node
// lifecycle controller (taints) and the taint eviction controller (deletes
// pods) running in every flavour, with the default timings.
func TestControllerManagerEvicts(t *testing.T) {
	o, err := ControlPlaneOptions{Flavour: Bare}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []Flavour{KubeadmLike, Bare, BareNoBootstrapSigner} {
		o.Flavour = f
		args := controllerManagerArgs(layout{dir: "/x", pki: &PKI{Dir: "/x/pki"}}, o)
		for _, a := range args {
			for _, off := range []string{"-node-lifecycle-controller", "-taint-eviction-controller", "--node-monitor-grace-period", "--pod-eviction-timeout", "--node-eviction-rate"} {
				if strings.Contains(a, off) {
					t.Errorf("%s: %s changes eviction", f, a)
				}
			}
		}
		if !strings.HasPrefix(controllersFlag(f), "*,") {
			t.Errorf("%s: --controllers=%s does not start from the defaults", f, controllersFlag(f))
		}
	}
}
