package phases

import (
	"context"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/yaml"

	"github.com/edgeadm/edgeadm/manifests"
)

// EdgeCoreDNSListen tells where the cluster's edge coredns answers, from the
// ConfigMap addon deploys with it (readable with the bootstrap token):
// manifests.EdgeCoreDNSListenNode, or "" when the cluster does not run edge
// coredns. Without the ConfigMap, or without the Role that lets a bootstrap
// token read it (both come with edge coredns), the cluster's clusterDNS
// stays.
func EdgeCoreDNSListen(ctx context.Context, client kubernetes.Interface) (string, error) {
	ns, name := manifests.Namespace, manifests.EdgeCoreDNSConfigMap
	cm, err := client.CoreV1().ConfigMaps(ns).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) || apierrors.IsForbidden(err) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read %s/%s (is edge coredns deployed?): %w", ns, name, err)
	}
	listen := cm.Data[manifests.EdgeCoreDNSListenKey]
	if listen != manifests.EdgeCoreDNSListenNode {
		return "", fmt.Errorf("%s/%s says edge coredns listens on %q; this edgeadm knows only %q: use the edgeadm that ran addon",
			ns, name, listen, manifests.EdgeCoreDNSListenNode)
	}
	return listen, nil
}

// WithEdgeClusterDNS points the kubelet's clusterDNS at edge coredns on the
// node's own IP, so the node's pods resolve names through it (and through
// edgehub while the link is down) instead of the cloud's DNS Service.
func WithEdgeClusterDNS(cfg []byte, nodeIP string) ([]byte, error) {
	var m map[string]any
	if err := yaml.Unmarshal(cfg, &m); err != nil {
		return nil, fmt.Errorf("kubelet configuration: %w", err)
	}
	if m == nil {
		m = map[string]any{}
	}
	m["clusterDNS"] = []string{nodeIP}
	return yaml.Marshal(m)
}

// edgeDNS adapts cfg for edge coredns when the cluster runs it; it returns
// cfg unchanged otherwise, and whether it changed it.
func edgeDNS(d Data, cfg []byte, nodeIP string) ([]byte, bool, error) {
	rc, err := BootstrapRESTConfig(d)
	if err != nil {
		return nil, false, err
	}
	client, err := d.Env().NewClient(rc)
	if err != nil {
		return nil, false, err
	}
	listen, err := EdgeCoreDNSListen(d.Context(), client)
	if err != nil || listen == "" {
		return cfg, false, err
	}
	out, err := WithEdgeClusterDNS(cfg, nodeIP)
	return out, err == nil, err
}
