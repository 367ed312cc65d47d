package phases

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"path"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	watchtools "k8s.io/client-go/tools/watch"
	"k8s.io/kubernetes/cmd/kubeadm/app/cmd/phases/workflow"

	"github.com/edgeadm/edgeadm/pkg/host"
)

// CNIConfigName is the pod network configuration join writes.
const CNIConfigName = "10-edgeadm.conflist"

// cniWait bounds the wait for the Node's pod CIDR.
const cniWait = 2 * time.Minute

// watchNode watches the Node until cond holds for it, bounded by timeout,
// and returns the last version seen (also on failure, when there was one).
func watchNode(ctx context.Context, client kubernetes.Interface, name string, timeout time.Duration, cond func(*corev1.Node) bool) (*corev1.Node, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	sel := fields.OneTermEqualSelector("metadata.name", name).String()
	lw := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			o.FieldSelector = sel
			return client.CoreV1().Nodes().List(ctx, o)
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			o.FieldSelector = sel
			return client.CoreV1().Nodes().Watch(ctx, o)
		},
	}
	var last *corev1.Node
	// The wrapper lets a client that cannot stream a watch list (a fake in
	// tests) say so, and be listed and watched the classic way.
	_, err := watchtools.UntilWithSync(ctx, cache.ToListWatcherWithWatchListSemantics(lw, client), &corev1.Node{}, nil, func(e watch.Event) (bool, error) {
		n, ok := e.Object.(*corev1.Node)
		if !ok || n.Name != name {
			return false, nil
		}
		last = n
		return cond(n), nil
	})
	return last, err
}

func nodeReady(n *corev1.Node) (bool, string) {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue, fmt.Sprintf("%s: %s", c.Reason, c.Message)
		}
	}
	return false, "no Ready condition yet"
}

// NewCNIPhase gives the node's pods a network: a bridge with addresses from
// the pod CIDR the cluster gave the Node, unless a pod network is already
// configured in /etc/cni/net.d.
func NewCNIPhase() workflow.Phase {
	return workflow.Phase{
		Name:         "cni",
		Short:        "Configure the pod network (a bridge over the Node's pod CIDR) unless /etc/cni/net.d has one",
		InheritFlags: Flags,
		RunIf:        notJoined,
		Run: func(c workflow.RunData) error {
			d := c.(Data)
			h, p := d.Host(), d.Paths()
			if names, err := h.ReadDir(p.CNIConfDir); err == nil {
				for _, n := range names {
					if n != CNIConfigName && (strings.HasSuffix(n, ".conf") || strings.HasSuffix(n, ".conflist") || strings.HasSuffix(n, ".json")) {
						fmt.Fprintf(d.Out(), "[cni] %s configures the pod network: leaving it to that\n", path.Join(p.CNIConfDir, n))
						return nil
					}
				}
			}
			if d.DryRun() {
				fmt.Fprintf(d.Out(), "[cni] Would write %s for the pod CIDR the cluster gives node %q\n", path.Join(p.CNIConfDir, CNIConfigName), d.NodeName())
				return nil
			}
			client, err := NodeClient(d)
			if err != nil {
				return err
			}
			wait := min(d.Timeout(), cniWait)
			node, err := watchNode(d.Context(), client, d.NodeName(), wait, func(n *corev1.Node) bool { return n.Spec.PodCIDR != "" })
			if err != nil {
				d.Warn("PodCIDR", fmt.Sprintf("the cluster gave node %q no pod CIDR within %s (kube-controller-manager --allocate-node-cidrs): "+
					"the node stays NotReady until a CNI plugin configures %s", d.NodeName(), wait, p.CNIConfDir))
				return nil
			}
			cidrs := node.Spec.PodCIDRs
			if len(cidrs) == 0 {
				cidrs = []string{node.Spec.PodCIDR}
			}
			if err := h.MkdirAll(p.CNIConfDir, 0o755); err != nil {
				return err
			}
			if err := h.WriteFile(path.Join(p.CNIConfDir, CNIConfigName), BridgeConflist(cidrs), host.Public); err != nil {
				return err
			}
			// Undone before the configuration is removed: pods' networks
			// can only be torn down while it is there.
			if err := h.Residue(d.Context(), podsResidue(p)); err != nil {
				return err
			}
			fmt.Fprintf(d.Out(), "[cni] Pods get addresses from %s on bridge cni0\n", strings.Join(cidrs, ", "))
			return nil
		},
	}
}

// BridgeConflist is a CNI configuration for a bridge with host-local
// addresses from cidrs, NAT for traffic leaving the node, and host ports.
func BridgeConflist(cidrs []string) []byte {
	var ranges [][]map[string]string
	var routes []map[string]string
	for _, c := range cidrs {
		ranges = append(ranges, []map[string]string{{"subnet": c}})
		dst := "0.0.0.0/0"
		if strings.Contains(c, ":") {
			dst = "::/0"
		}
		routes = append(routes, map[string]string{"dst": dst})
	}
	conf := map[string]any{
		"cniVersion": "1.0.0",
		"name":       "edgeadm",
		"plugins": []any{
			map[string]any{
				"type": "bridge", "bridge": "cni0", "isGateway": true, "ipMasq": true, "hairpinMode": true,
				"ipam": map[string]any{"type": "host-local", "ranges": ranges, "routes": routes},
			},
			map[string]any{"type": "portmap", "capabilities": map[string]bool{"portMappings": true}},
		},
	}
	out, _ := json.MarshalIndent(conf, "", "  ")
	return append(out, '\n')
}

// NewWaitReadyPhase watches the Node, bounded, until it is Ready.
func NewWaitReadyPhase() workflow.Phase {
	return workflow.Phase{
		Name:         "wait-ready",
		Short:        "Wait for the Node to be Ready",
		InheritFlags: Flags,
		RunIf:        notJoined,
		Run: func(c workflow.RunData) error {
			d := c.(Data)
			if d.DryRun() {
				fmt.Fprintf(d.Out(), "[wait-ready] Would wait up to %s for node %q to be Ready\n", d.Timeout(), d.NodeName())
				return nil
			}
			client, err := NodeClient(d)
			if err != nil {
				return err
			}
			fmt.Fprintf(d.Out(), "[wait-ready] Waiting up to %s for node %q to be Ready\n", d.Timeout(), d.NodeName())
			last, err := watchNode(d.Context(), client, d.NodeName(), d.Timeout(), func(n *corev1.Node) bool {
				ok, _ := nodeReady(n)
				return ok
			})
			if err != nil {
				why := "the Node was not even registered (see: journalctl -u kubelet)"
				if last != nil {
					_, why = nodeReady(last)
				}
				return fmt.Errorf("node %q is not Ready after %s (%s)", d.NodeName(), d.Timeout(), why)
			}
			fmt.Fprintf(d.Out(), "[wait-ready] Node %q is Ready\n", d.NodeName())
			return nil
		},
	}
}

// NewLabelPhase makes sure the Node carries the edge label and --node-labels.
// The kubelet sets them when it registers the Node; a Node that existed
// before (a host joined again under its old name) gets them here, patched
// with the node's own credentials.
func NewLabelPhase() workflow.Phase {
	return workflow.Phase{
		Name:         "label",
		Short:        "Make sure the Node carries " + EdgeNodeLabel + "=" + EdgeNodeLabelValue + " and --node-labels",
		InheritFlags: Flags,
		RunIf:        notJoined,
		Run: func(c workflow.RunData) error {
			d := c.(Data)
			want := d.NodeLabels()
			if d.DryRun() {
				fmt.Fprintf(d.Out(), "[label] Would make sure node %q carries %s\n", d.NodeName(), labelString(want))
				return nil
			}
			client, err := NodeClient(d)
			if err != nil {
				return err
			}
			ctx := d.Context()
			node, err := client.CoreV1().Nodes().Get(ctx, d.NodeName(), metav1.GetOptions{})
			if err != nil {
				return fmt.Errorf("read node %q: %w", d.NodeName(), err)
			}
			missing := map[string]string{}
			for k, v := range want {
				if node.Labels[k] != v {
					missing[k] = v
				}
			}
			if len(missing) == 0 {
				fmt.Fprintf(d.Out(), "[label] Node %q carries %s\n", d.NodeName(), labelString(want))
				return nil
			}
			patch, err := json.Marshal(map[string]any{"metadata": map[string]any{"labels": missing}})
			if err != nil {
				return err
			}
			if _, err := client.CoreV1().Nodes().Patch(ctx, d.NodeName(), types.MergePatchType, patch, metav1.PatchOptions{FieldManager: "edgeadm"}); err != nil {
				return fmt.Errorf("label node %q with %s: %w", d.NodeName(), labelString(missing), err)
			}
			fmt.Fprintf(d.Out(), "[label] Labelled node %q with %s\n", d.NodeName(), labelString(missing))
			return nil
		},
	}
}

func labelString(m map[string]string) string {
	var kv []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		kv = append(kv, k+"="+m[k])
	}
	return strings.Join(kv, ",")
}
