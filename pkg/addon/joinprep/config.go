package joinprep

import (
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	kubeletconfig "k8s.io/kubelet/config/v1beta1"
	kubeadmapi "k8s.io/kubernetes/cmd/kubeadm/app/apis/kubeadm"
	kubeadmscheme "k8s.io/kubernetes/cmd/kubeadm/app/apis/kubeadm/scheme"
	kubeadmapiv1 "k8s.io/kubernetes/cmd/kubeadm/app/apis/kubeadm/v1beta4"
	"k8s.io/kubernetes/cmd/kubeadm/app/componentconfigs"
	kubeadmconstants "k8s.io/kubernetes/cmd/kubeadm/app/constants"
	configutil "k8s.io/kubernetes/cmd/kubeadm/app/util/config"

	"github.com/edgeadm/edgeadm/pkg/clusterfacts"
)

// ClusterConfiguration builds, with kubeadm's own types and defaulting, the
// ClusterConfiguration a kubeadm init with these facts would have uploaded.
func ClusterConfiguration(f *clusterfacts.Facts) (*kubeadmapi.ClusterConfiguration, error) {
	v := &kubeadmapiv1.ClusterConfiguration{
		KubernetesVersion: kubernetesVersion(f.ServerVersion),
		Networking: kubeadmapiv1.Networking{
			ServiceSubnet: f.ServiceCIDR,
			PodSubnet:     f.PodCIDR,
			DNSDomain:     f.DNSDomain,
		},
	}
	kubeadmscheme.Scheme.Default(v)
	cfg := &kubeadmapi.ClusterConfiguration{}
	if err := kubeadmscheme.Scheme.Convert(v, cfg, nil); err != nil {
		return nil, err
	}
	componentconfigs.Default(cfg, &kubeadmapi.APIEndpoint{}, &kubeadmapi.NodeRegistrationOptions{})
	return cfg, nil
}

// kubernetesVersion drops build metadata (v1.37.1+k3s1 -> v1.37.1), which
// kubeadm's version parsing refuses.
func kubernetesVersion(v string) string {
	v, _, _ = strings.Cut(v, "+")
	return v
}

// configMaps returns kube-system/kubeadm-config and kube-system/kubelet-config
// as kubeadm init writes them.
func configMaps(f *clusterfacts.Facts) (*corev1.ConfigMap, *corev1.ConfigMap, error) {
	cfg, err := ClusterConfiguration(f)
	if err != nil {
		return nil, nil, err
	}
	kc, ok := cfg.ComponentConfigs[componentconfigs.KubeletGroup]
	if !ok {
		return nil, nil, fmt.Errorf("kubeadm made no kubelet configuration")
	}
	kubelet, ok := kc.Get().(*kubeletconfig.KubeletConfiguration)
	if !ok {
		return nil, nil, fmt.Errorf("kubeadm's kubelet configuration has an unexpected type %T", kc.Get())
	}
	// The cluster's real DNS Service, which may differ from the 10th address
	// kubeadm assumes. The rest is kubeadm's default for every node: systemd
	// cgroup driver, webhook authn/authz, certificate rotation. Hosts that
	// need more (cgroup v1: failCgroupV1 false) get it from join, per host.
	kubelet.ClusterDNS = []string{f.ClusterDNS}
	kubeletYAML, err := kc.Marshal()
	if err != nil {
		return nil, nil, err
	}
	upload := cfg.DeepCopy()
	upload.ComponentConfigs = kubeadmapi.ComponentConfigMap{}
	clusterYAML, err := configutil.MarshalKubeadmConfigObject(upload, kubeadmapiv1.SchemeGroupVersion)
	if err != nil {
		return nil, nil, err
	}
	kubeadmCM := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: kubeadmconstants.KubeadmConfigConfigMap, Namespace: metav1.NamespaceSystem},
		Data:       map[string]string{kubeadmconstants.ClusterConfigurationConfigMapKey: string(clusterYAML)},
	}
	kubeletCM := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: kubeadmconstants.KubeletBaseConfigurationConfigMap, Namespace: metav1.NamespaceSystem},
		Data:       map[string]string{kubeadmconstants.KubeletBaseConfigurationConfigMapKey: string(kubeletYAML)},
	}
	// As kubeadm does for a config it generated: lets "kubeadm upgrade" know
	// the user has not changed it.
	componentconfigs.SignConfigMap(kubeletCM)
	return kubeadmCM, kubeletCM, nil
}

// ToUnstructured converts a typed object from the client-go scheme,
// filling apiVersion and kind and dropping empty metadata the converter adds.
func ToUnstructured(o runtime.Object) (*unstructured.Unstructured, error) {
	gvks, _, err := scheme.ObjectKinds(o)
	if err != nil || len(gvks) == 0 {
		return nil, fmt.Errorf("no kind for %T: %v", o, err)
	}
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(o)
	if err != nil {
		return nil, err
	}
	u := &unstructured.Unstructured{Object: m}
	u.SetAPIVersion(gvks[0].GroupVersion().String())
	u.SetKind(gvks[0].Kind)
	unstructured.RemoveNestedField(u.Object, "metadata", "creationTimestamp")
	unstructured.RemoveNestedField(u.Object, "status")
	return u, nil
}

var scheme = newScheme()

func newScheme() *runtime.Scheme {
	s := runtime.NewScheme()
	_ = corev1.AddToScheme(s)
	_ = rbacv1.AddToScheme(s)
	return s
}
