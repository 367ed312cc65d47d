package phases

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/kubernetes/cmd/kubeadm/app/cmd/phases/workflow"
	"k8s.io/kubernetes/cmd/kubeadm/app/constants"
	"sigs.k8s.io/yaml"

	"github.com/edgeadm/edgeadm/pkg/host"
)

// resolvedResolvConf is systemd-resolved's list of real upstream servers;
// /etc/resolv.conf then names only its local stub, useless inside pods.
const resolvedResolvConf = "/run/systemd/resolve/resolv.conf"

// NewKubeletConfigPhase writes the kubelet's configuration: the cluster's
// kube-system/kubelet-config (read with the bootstrap token, as kubeadm join
// does), adapted to this node, and the node's own flags.
func NewKubeletConfigPhase() workflow.Phase {
	return workflow.Phase{
		Name:         "kubelet-config",
		Short:        "Write /var/lib/kubelet/config.yaml from the cluster's kubelet-config, and the node's flags (name, IP, labels)",
		InheritFlags: Flags,
		RunIf:        notJoined,
		Run: func(c workflow.RunData) error {
			d := c.(Data)
			doc, err := fetchKubeletConfig(d)
			if err != nil {
				return err
			}
			if _, err := KubeletConfigFits(d, doc); err != nil {
				return err
			}
			cfg, staticPods, err := NodeKubeletConfig(doc, d.Paths(), d.Host())
			if err != nil {
				return err
			}
			nodeIP, err := d.NodeIP()
			if err != nil {
				return err
			}
			cfg, edgeDNSOn, err := edgeDNS(d, cfg, nodeIP)
			if err != nil {
				return err
			}
			h, p := d.Host(), d.Paths()
			if err := h.MkdirAll(p.KubeletDir, 0o700); err != nil {
				return err
			}
			if err := h.WriteFile(p.KubeletConfig, cfg, host.Public); err != nil {
				return err
			}
			if err := h.WriteFile(p.KubeletFlagsEnv, KubeletFlags(d.NodeName(), nodeIP, d.NodeLabels()), host.Public); err != nil {
				return err
			}
			if staticPods != "" {
				if err := h.MkdirAll(staticPods, 0o755); err != nil {
					return err
				}
			}
			fmt.Fprintf(d.Out(), "[kubelet-config] Wrote %s (from kube-system/%s) and %s\n", p.KubeletConfig, constants.KubeletBaseConfigurationConfigMap, p.KubeletFlagsEnv)
			if edgeDNSOn {
				fmt.Fprintf(d.Out(), "[kubelet-config] clusterDNS is %s: edge coredns answers the node's pods on the node's IP\n", nodeIP)
			}
			return nil
		},
	}
}

func fetchKubeletConfig(d Data) ([]byte, error) {
	if d.DryRun() {
		if info := d.ClusterInfo(); info != nil && info.KubeletConfig != nil {
			return info.KubeletConfig, nil
		}
	}
	rc, err := BootstrapRESTConfig(d)
	if err != nil {
		return nil, err
	}
	client, err := d.Env().NewClient(rc)
	if err != nil {
		return nil, err
	}
	cm, err := client.CoreV1().ConfigMaps(metav1.NamespaceSystem).Get(d.Context(), constants.KubeletBaseConfigurationConfigMap, metav1.GetOptions{})
	if apierrors.IsNotFound(err) || apierrors.IsForbidden(err) {
		return nil, fmt.Errorf("the bootstrap token cannot read kube-system/%s (%v): %s", constants.KubeletBaseConfigurationConfigMap, apierrors.ReasonForError(err), addonHint)
	}
	if err != nil {
		return nil, fmt.Errorf("read kube-system/%s: %w", constants.KubeletBaseConfigurationConfigMap, err)
	}
	return []byte(cm.Data[constants.KubeletBaseConfigurationConfigMapKey]), nil
}

// NodeKubeletConfig adapts the cluster's KubeletConfiguration to this node,
// the way kubeadm join does: the container runtime's socket when the
// cluster leaves it out, systemd-resolved's real resolv.conf when the host
// runs it, and failCgroupV1: false on a cgroup v1 host when the cluster does
// not say (KubeletConfigFits refuses an explicit true). Everything else is
// the cluster's. It also returns the static
// pod directory to create, if the configuration names one.
func NodeKubeletConfig(doc []byte, p host.Paths, r host.Reader) ([]byte, string, error) {
	var cfg map[string]any
	if err := yaml.Unmarshal(doc, &cfg); err != nil {
		return nil, "", fmt.Errorf("kube-system/%s: %w", constants.KubeletBaseConfigurationConfigMap, err)
	}
	if _, ok := cfg["containerRuntimeEndpoint"]; !ok {
		cfg["containerRuntimeEndpoint"] = CRIEndpoint(p)
	}
	if _, set := cfg["failCgroupV1"]; !set && cgroupV1(r) {
		cfg["failCgroupV1"] = false
	}
	if rc, _ := cfg["resolvConf"].(string); rc == "" || rc == "/etc/resolv.conf" {
		if _, err := r.Lstat(resolvedResolvConf); err == nil {
			cfg["resolvConf"] = resolvedResolvConf
		}
	}
	out, err := yaml.Marshal(cfg)
	if err != nil {
		return nil, "", err
	}
	static, _ := cfg["staticPodPath"].(string)
	if static != "" && host.CheckPath(static) != nil {
		static = ""
	}
	return out, static, nil
}

// KubeletFlags is /var/lib/kubelet/kubeadm-flags.env: what differs from node
// to node. The labels are given to the kubelet, which sets them when it
// registers the Node (NodeRestriction lets it set any label outside the
// kubernetes.io and k8s.io namespaces).
func KubeletFlags(nodeName, nodeIP string, labels map[string]string) []byte {
	var kv []string
	for _, k := range slices.Sorted(maps.Keys(labels)) {
		kv = append(kv, k+"="+labels[k])
	}
	args := []string{
		"--hostname-override=" + nodeName,
		"--node-ip=" + nodeIP,
	}
	if len(kv) > 0 {
		args = append(args, "--node-labels="+strings.Join(kv, ","))
	}
	return []byte(fileHeader + `KUBELET_KUBEADM_ARGS="` + strings.Join(args, " ") + "\"\n")
}
