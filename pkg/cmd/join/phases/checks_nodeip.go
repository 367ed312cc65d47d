package phases

import (
	"context"
	"fmt"
	"net/netip"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/kubernetes/cmd/kubeadm/app/constants"
	"sigs.k8s.io/yaml"

	"github.com/edgeadm/edgeadm/pkg/preflight"
)

// NodeIPConflictCheckName is what --ignore-preflight-errors takes to let a
// colliding node IP through.
const NodeIPConflictCheckName = "NodeIPConflict"

// nodeIPConflictCheck refuses a node IP that another Node already reports
// as its InternalIP, or that lies in the cluster's Service or Pod range.
// The cloud-edge tunnel finds a kubelet by its node IP, so a collision
// would send logs, exec and port-forward of one node to another host, and a
// node IP inside a cluster range is shadowed by kube-proxy's and the CNI's
// routes on every cloud host.
//
// It runs after the cluster checks and uses what they verified (the CA);
// when they failed it says nothing more. The bootstrap token may not be
// allowed to list Nodes or read kubeadm-config: that part of the check is
// then a warning saying what could not be checked.
func nodeIPConflictCheck(d Data) preflight.Check {
	return check(NodeIPConflictCheckName, func(ctx context.Context) ([]error, []error) {
		info := d.ClusterInfo()
		if info == nil {
			return nil, nil // an earlier cluster check failed and said why
		}
		raw, err := d.NodeIP()
		if err != nil {
			return nil, nil // the NodeIP check reports it
		}
		ip, err := netip.ParseAddr(raw)
		if err != nil {
			return nil, nil // the NodeIP check reports it
		}
		ctx, cancel := context.WithTimeout(ctx, clusterTimeout)
		defer cancel()
		t := d.Target()
		client, err := d.Env().NewClient(&rest.Config{
			Host:            "https://" + t.Endpoint,
			TLSClientConfig: rest.TLSClientConfig{CAData: info.CAData, ServerName: t.ServerName()},
			BearerToken:     d.Token(),
			Timeout:         clusterTimeout,
		})
		if err != nil {
			return one(fmt.Errorf("cannot check node IP %s against the cluster: %w", ip, err)), nil
		}
		var warnings []error
		ranges, err := clusterRanges(ctx, client.CoreV1().ConfigMaps(metav1.NamespaceSystem).Get)
		if err != nil {
			warnings = append(warnings, fmt.Errorf("cannot check node IP %s against the cluster's Service and Pod ranges (%v): make sure yourself that it is outside them", ip, err))
		}
		nodes, err := client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		if err != nil {
			warnings = append(warnings, fmt.Errorf("the bootstrap token cannot list Nodes (%v), so this join cannot check that no other node already has %s: "+
				"check it yourself on a master (kubectl get nodes -o wide)", apierrors.ReasonForError(err), ip))
			nodes = &corev1.NodeList{}
		}
		if err := NodeIPConflict(ip, d.NodeName(), nodes.Items, ranges); err != nil {
			return warnings, one(err)
		}
		return warnings, nil
	})
}

// ClusterRange is a cloud-side address range a node IP must stay out of.
type ClusterRange struct {
	Prefix netip.Prefix
	// What is "Service" or "Pod"; Source says where the range was read.
	What, Source string
}

// configMapGetter reads one ConfigMap (client-go's Get).
type configMapGetter func(ctx context.Context, name string, opts metav1.GetOptions) (*corev1.ConfigMap, error)

// clusterRanges reads the Service and Pod subnets from kube-system/kubeadm-config,
// which addon (or kubeadm init) writes and the bootstrap token may read.
func clusterRanges(ctx context.Context, get configMapGetter) ([]ClusterRange, error) {
	cm, err := get(ctx, constants.KubeadmConfigConfigMap, metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("kube-system/%s: %s", constants.KubeadmConfigConfigMap, apierrors.ReasonForError(err))
	}
	return parseClusterRanges(cm.Data[constants.ClusterConfigurationConfigMapKey])
}

// parseClusterRanges reads networking.serviceSubnet and networking.podSubnet
// of a ClusterConfiguration; each may list two comma-separated subnets
// (dual stack).
func parseClusterRanges(doc string) ([]ClusterRange, error) {
	var cfg struct {
		Networking struct {
			ServiceSubnet string `json:"serviceSubnet"`
			PodSubnet     string `json:"podSubnet"`
		} `json:"networking"`
	}
	if err := yaml.Unmarshal([]byte(doc), &cfg); err != nil {
		return nil, fmt.Errorf("kube-system/%s holds a %s that does not parse: %v", constants.KubeadmConfigConfigMap, constants.ClusterConfigurationConfigMapKey, err)
	}
	source := "kube-system/" + constants.KubeadmConfigConfigMap
	var out []ClusterRange
	for _, f := range []struct{ what, list string }{
		{"Service", cfg.Networking.ServiceSubnet},
		{"Pod", cfg.Networking.PodSubnet},
	} {
		for _, s := range strings.Split(f.list, ",") {
			s = strings.TrimSpace(s)
			if s == "" {
				continue
			}
			p, err := netip.ParsePrefix(s)
			if err != nil {
				return nil, fmt.Errorf("%s: the %s subnet %q is not a CIDR: %v", source, strings.ToLower(f.what), s, err)
			}
			out = append(out, ClusterRange{Prefix: p.Masked(), What: f.what, Source: source})
		}
	}
	return out, nil
}

// NodeIPConflict says why ip cannot be the InternalIP of node nodeName, or
// nil: another Node (not nodeName itself, which a rejoin finds) reports it,
// or it lies in a Service or Pod range (the ranges given, and every Node's
// pod CIDRs).
func NodeIPConflict(ip netip.Addr, nodeName string, nodes []corev1.Node, ranges []ClusterRange) error {
	ip = ip.Unmap()
	const fix = "pass --node-ip with this host's own address (one no other node uses, outside the cluster's Service and Pod ranges), " +
		"or give the host another address; --ignore-preflight-errors=" + NodeIPConflictCheckName + " skips this check, but the tunnel would then reach the wrong host"
	for _, n := range nodes {
		if n.Name == nodeName {
			continue
		}
		for _, a := range n.Status.Addresses {
			if a.Type != corev1.NodeInternalIP {
				continue
			}
			if other, err := netip.ParseAddr(a.Address); err == nil && other.Unmap() == ip {
				return fmt.Errorf("node IP %s is already the InternalIP of node %q: the kubelet, and the tunnel that reaches kubelets by node IP, "+
					"would mix the two nodes up; %s", ip, n.Name, fix)
			}
		}
	}
	all := append([]ClusterRange{}, ranges...)
	for _, n := range nodes {
		cidrs := n.Spec.PodCIDRs
		if len(cidrs) == 0 && n.Spec.PodCIDR != "" {
			cidrs = []string{n.Spec.PodCIDR}
		}
		for _, c := range cidrs {
			if p, err := netip.ParsePrefix(c); err == nil {
				all = append(all, ClusterRange{Prefix: p.Masked(), What: "Pod", Source: fmt.Sprintf("node %q's spec.podCIDRs", n.Name)})
			}
		}
	}
	for _, r := range all {
		if r.Prefix.Contains(ip) {
			return fmt.Errorf("node IP %s lies in the cluster's %s range %s (from %s): cloud hosts route that range into the cluster, "+
				"so neither the API server nor the tunnel could reach this node; %s", ip, r.What, r.Prefix, r.Source, fix)
		}
	}
	return nil
}
