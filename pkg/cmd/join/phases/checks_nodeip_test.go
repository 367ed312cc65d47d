package phases

import (
	"net/netip"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func node(name, internalIP string, podCIDRs ...string) corev1.Node {
	n := corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: corev1.NodeSpec{PodCIDRs: podCIDRs}}
	if internalIP != "" {
		n.Status.Addresses = []corev1.NodeAddress{
			{Type: corev1.NodeHostName, Address: name},
			{Type: corev1.NodeInternalIP, Address: internalIP},
		}
	}
	return n
}

func TestNodeIPConflict(t *testing.T) {
	ranges, err := parseClusterRanges("apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\nnetworking:\n" +
		"  serviceSubnet: 10.96.0.0/12,fd00:10:96::/112\n  podSubnet: 10.244.0.0/16\n")
	if err != nil {
		t.Fatal(err)
	}
	nodes := []corev1.Node{
		node("master-1", "192.168.1.10", "10.244.0.0/24"),
		node("edge-2", "192.168.0.5", "10.250.1.0/24"),
		{ObjectMeta: metav1.ObjectMeta{Name: "edge-3"}, Status: corev1.NodeStatus{Addresses: []corev1.NodeAddress{{Type: corev1.NodeExternalIP, Address: "203.0.113.7"}}}},
		node("edge-1", "192.168.0.9"),
	}
	tests := []struct {
		ip, want string // want "" is no conflict
	}{
		{"192.168.0.9", ""},  // our own Node (a rejoin) may already carry it
		{"192.168.0.77", ""}, // free
		{"203.0.113.7", ""},  // an ExternalIP is not what the tunnel keys on
		{"192.168.0.5", `node IP 192.168.0.5 is already the InternalIP of node "edge-2"`},
		{"::ffff:192.168.1.10", `already the InternalIP of node "master-1"`},
		{"10.100.0.1", "lies in the cluster's Service range 10.96.0.0/12 (from kube-system/kubeadm-config)"},
		{"fd00:10:96::5", "lies in the cluster's Service range fd00:10:96::/112"},
		{"10.244.200.1", "lies in the cluster's Pod range 10.244.0.0/16 (from kube-system/kubeadm-config)"},
		{"10.250.1.9", `lies in the cluster's Pod range 10.250.1.0/24 (from node "edge-2"'s spec.podCIDRs)`},
	}
	for _, tt := range tests {
		err := NodeIPConflict(netip.MustParseAddr(tt.ip), "edge-1", nodes, ranges)
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("%s: unexpected conflict: %v", tt.ip, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("%s: got %v, want it to contain %q", tt.ip, err, tt.want)
		case tt.want != "" && !strings.Contains(err.Error(), "pass --node-ip"):
			t.Errorf("%s: the error does not say how to fix it: %v", tt.ip, err)
		}
	}
}

func TestParseClusterRanges(t *testing.T) {
	r, err := parseClusterRanges("networking:\n  serviceSubnet: 10.96.0.1/12\n")
	if err != nil || len(r) != 1 || r[0].Prefix.String() != "10.96.0.0/12" || r[0].What != "Service" {
		t.Errorf("got %v, %v", r, err)
	}
	if r, err := parseClusterRanges(""); err != nil || len(r) != 0 {
		t.Errorf("empty config: got %v, %v", r, err)
	}
	if _, err := parseClusterRanges("networking:\n  podSubnet: 10.244.0.0\n"); err == nil || !strings.Contains(err.Error(), `the pod subnet "10.244.0.0" is not a CIDR`) {
		t.Errorf("bad subnet: %v", err)
	}
}
