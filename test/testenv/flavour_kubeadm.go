package testenv

import (
	"context"
	"fmt"
	"os"
	"time"

	kubeletconfig "k8s.io/kubelet/config/v1beta1"
	"k8s.io/utils/ptr"

	kubeadmapi "k8s.io/kubernetes/cmd/kubeadm/app/apis/kubeadm"
	kubeadmapiv1 "k8s.io/kubernetes/cmd/kubeadm/app/apis/kubeadm/v1beta4"
	"k8s.io/kubernetes/cmd/kubeadm/app/componentconfigs"
	kubeadmconstants "k8s.io/kubernetes/cmd/kubeadm/app/constants"
	"k8s.io/kubernetes/cmd/kubeadm/app/phases/bootstraptoken/clusterinfo"
	nodebootstraptoken "k8s.io/kubernetes/cmd/kubeadm/app/phases/bootstraptoken/node"
	kubeconfigphase "k8s.io/kubernetes/cmd/kubeadm/app/phases/kubeconfig"
	kubeletphase "k8s.io/kubernetes/cmd/kubeadm/app/phases/kubelet"
	"k8s.io/kubernetes/cmd/kubeadm/app/phases/uploadconfig"
	kubeadmutil "k8s.io/kubernetes/cmd/kubeadm/app/util"
	configutil "k8s.io/kubernetes/cmd/kubeadm/app/util/config"
	kubeconfigutil "k8s.io/kubernetes/cmd/kubeadm/app/util/kubeconfig"
)

// KubernetesVersion is the version of the control plane binaries the test
// environment builds, and the one KubeadmLike clusters record.
const KubernetesVersion = "v1.37.1"

// kubeadmInitConfiguration is the configuration `kubeadm init` would run with
// on this control plane, made by kubeadm's own defaulting and validation: the
// advertise address is CloudIP, controlPlaneEndpoint is the public endpoint.
func kubeadmInitConfiguration(c *ControlPlane) (*kubeadmapi.InitConfiguration, error) {
	o := c.Options
	initCfg := &kubeadmapiv1.InitConfiguration{
		LocalAPIEndpoint: kubeadmapiv1.APIEndpoint{
			AdvertiseAddress: c.Net.CloudIP.String(),
			BindPort:         int32(o.APIServerPort),
		},
		NodeRegistration: kubeadmapiv1.NodeRegistrationOptions{
			Name:      fmt.Sprintf("%s%d-control-plane", namePrefix, c.Net.Index),
			CRISocket: kubeadmconstants.DefaultCRISocket,
		},
	}
	clusterCfg := &kubeadmapiv1.ClusterConfiguration{
		KubernetesVersion:    KubernetesVersion,
		ControlPlaneEndpoint: c.PublicEndpoint(),
		Networking: kubeadmapiv1.Networking{
			ServiceSubnet: o.ServiceCIDR,
			PodSubnet:     o.PodCIDR,
			DNSDomain:     o.DNSDomain,
		},
		// The harness's PKI is ECDSA P-256 (see NewPKI); say so, as kubeadm
		// would for a cluster it made with that algorithm.
		EncryptionAlgorithm: kubeadmapiv1.EncryptionAlgorithmECDSAP256,
	}
	cfg, err := configutil.DefaultedInitConfiguration(initCfg, clusterCfg, configutil.LoadOrDefaultConfigurationOptions{SkipCRIDetect: true})
	if err != nil {
		return nil, fmt.Errorf("kubeadm configuration: %w", err)
	}
	kc, ok := cfg.ComponentConfigs[componentconfigs.KubeletGroup]
	if !ok {
		return nil, fmt.Errorf("kubeadm configuration has no KubeletConfiguration")
	}
	kubelet, ok := kc.Get().(*kubeletconfig.KubeletConfiguration)
	if !ok {
		return nil, fmt.Errorf("kubeadm configuration: unexpected kubelet config type %T", kc.Get())
	}
	if hostIsCgroupV1() {
		// kubeadm init itself refuses a cgroup v1 host unless the admin supplies
		// a KubeletConfiguration with this, so a real cluster here would have it.
		kubelet.FailCgroupV1 = ptr.To(false)
	}
	if o.KubeletConfig != nil {
		o.KubeletConfig(kubelet)
	}
	return cfg, nil
}

// hostIsCgroupV1 reports whether the host lacks the unified cgroup hierarchy.
func hostIsCgroupV1() bool {
	_, err := os.Stat("/sys/fs/cgroup/cgroup.controllers")
	return err != nil
}

// uploadKubeadmObjects leaves in the cluster what `kubeadm init` leaves for
// joins, by calling the same kubeadm phases its init workflow runs (in the same
// order): upload-config (kubeadm-config, kubelet-config and their RBAC), the
// kubeadm:cluster-admins binding, and bootstrap-token (the default token, the
// bootstrap and node RBAC, kube-public/cluster-info and its anonymous RBAC).
// Addons (CoreDNS, kube-proxy) are not installed: joins do not need them, and
// kubeadm's join reads the kube-proxy config only when it exists.
func uploadKubeadmObjects(ctx context.Context, c *ControlPlane) error {
	cfg, err := kubeadmInitConfiguration(c)
	if err != nil {
		return err
	}
	client := c.Client
	if _, err := kubeconfigphase.EnsureAdminClusterRoleBindingImpl(ctx, client, nil, 100*time.Millisecond, 30*time.Second); err != nil {
		return fmt.Errorf("kubeadm: cluster-admins binding: %w", err)
	}
	if err := uploadconfig.UploadConfiguration(cfg, client); err != nil {
		return fmt.Errorf("kubeadm upload-config: %w", err)
	}
	if err := kubeletphase.CreateConfigMap(&cfg.ClusterConfiguration, client); err != nil {
		return fmt.Errorf("kubeadm upload-config kubelet: %w", err)
	}

	// The bootstrap-token phase, step by step as kubeadm's runBootstrapToken.
	if err := nodebootstraptoken.UpdateOrCreateTokens(client, false, cfg.BootstrapTokens); err != nil {
		return fmt.Errorf("kubeadm bootstrap-token: token: %w", err)
	}
	steps := []struct {
		what string
		fn   func() error
	}{
		{"allow bootstrap tokens to get nodes", func() error { return nodebootstraptoken.AllowBootstrapTokensToGetNodes(client) }},
		{"allow bootstrap tokens to post CSRs", func() error { return nodebootstraptoken.AllowBootstrapTokensToPostCSRs(client) }},
		{"auto-approve node bootstrap CSRs", func() error { return nodebootstraptoken.AutoApproveNodeBootstrapTokens(client) }},
		{"auto-approve node certificate rotation", func() error { return nodebootstraptoken.AutoApproveNodeCertificateRotation(client) }},
		{"allow the apiserver to access the kubelet API", func() error { return nodebootstraptoken.AllowAPIServerToAccessKubeletAPI(client) }},
	}
	for _, s := range steps {
		if err := s.fn(); err != nil {
			return fmt.Errorf("kubeadm bootstrap-token: %s: %w", s.what, err)
		}
	}
	// cluster-info carries the cluster entry of kubeadm's admin.conf: the CA and
	// the control plane endpoint, exactly as kubeadm's kubeconfig phase builds it.
	server, err := kubeadmutil.GetControlPlaneEndpoint(cfg.ControlPlaneEndpoint, &cfg.LocalAPIEndpoint)
	if err != nil {
		return fmt.Errorf("kubeadm bootstrap-token: %w", err)
	}
	adminConf := kubeconfigutil.CreateBasic(server, cfg.ClusterName, "kubernetes-admin", c.pki.CAPEM())
	if err := clusterinfo.CreateBootstrapConfigMapIfNotExists(client, adminConf); err != nil {
		return fmt.Errorf("kubeadm bootstrap-token: cluster-info: %w", err)
	}
	if err := clusterinfo.CreateClusterInfoRBACRules(client); err != nil {
		return fmt.Errorf("kubeadm bootstrap-token: cluster-info RBAC: %w", err)
	}
	if len(cfg.BootstrapTokens) > 0 {
		c.BootstrapToken = cfg.BootstrapTokens[0].Token.String()
	}
	return nil
}
