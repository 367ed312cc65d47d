package join

import (
	"context"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	k8stesting "k8s.io/client-go/testing"

	"github.com/edgeadm/edgeadm/pkg/cmd/exitcode"
)

// TestJoinRefusesACollidingNodeIP runs a whole join against a cluster where
// the node IP is taken, or lies in a cluster range: preflight refuses it,
// names the collision and the fix, and changes nothing.
func TestJoinRefusesACollidingNodeIP(t *testing.T) {
	tests := []struct {
		name  string
		setup func(w *world)
		has   string
	}{
		{"another node's InternalIP", func(w *world) {
			addNode(t, w, "edge-7", testNodeIP)
		}, `[ERROR NodeIPConflict]: node IP ` + testNodeIP + ` is already the InternalIP of node "edge-7"`},
		{"in the Service range", func(w *world) {
			addKubeadmConfig(t, w, "198.18.0.0/16", "10.244.0.0/16")
		}, "[ERROR NodeIPConflict]: node IP " + testNodeIP + " lies in the cluster's Service range 198.18.0.0/16 (from kube-system/kubeadm-config)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld(t)
			tt.setup(w)
			before := w.fake.State()
			_, stderr, code := w.run(w.args()...)
			if code != exitcode.PreflightFailed || !strings.Contains(stderr, tt.has) || !strings.Contains(stderr, "pass --node-ip") {
				t.Fatalf("exit %d, want %d; stderr lacks %q:\n%s", code, exitcode.PreflightFailed, tt.has, stderr)
			}
			noDiff(t, tt.name, w.fake.State(), before)
		})
	}
}

// TestNodeIPCheckCannotListNodes: a bootstrap token without "list nodes" (the
// default RBAC) gets a warning saying what was not checked, and joins.
func TestNodeIPCheckCannotListNodes(t *testing.T) {
	w := newWorld(t)
	addKubeadmConfig(t, w, "10.96.0.0/12", "10.244.0.0/16")
	addNode(t, w, "edge-7", testNodeIP) // hidden by the refusal below
	// Lists of all nodes are refused; wait-ready's list of its own node (by
	// field selector) goes through.
	w.clients.PrependReactor("list", "nodes", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if l, ok := a.(k8stesting.ListAction); ok && !l.GetListRestrictions().Fields.Empty() {
			return false, nil, nil
		}
		return true, nil, apierrors.NewForbidden(schema.GroupResource{Resource: "nodes"}, "", nil)
	})
	_, stderr, code := w.run(w.args()...)
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	if want := "the bootstrap token cannot list Nodes (Forbidden), so this join cannot check that no other node already has " + testNodeIP; !strings.Contains(stderr, want) {
		t.Errorf("stderr lacks %q:\n%s", want, stderr)
	}
}

// TestNodeIPIgnoredConflict: the check is one --ignore-preflight-errors name.
func TestNodeIPIgnoredConflict(t *testing.T) {
	w := newWorld(t)
	addNode(t, w, "edge-7", testNodeIP)
	_, stderr, code := w.run(w.args("--ignore-preflight-errors", "NodeIPConflict")...)
	if code != 0 || !strings.Contains(stderr, "[WARNING NodeIPConflict]") {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
}

func addNode(t *testing.T, w *world, name, ip string) {
	t.Helper()
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name},
		Status: corev1.NodeStatus{Addresses: []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: ip}}}}
	if _, err := w.clients.CoreV1().Nodes().Create(context.Background(), n, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func addKubeadmConfig(t *testing.T, w *world, serviceSubnet, podSubnet string) {
	t.Helper()
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "kubeadm-config"},
		Data: map[string]string{"ClusterConfiguration": "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\nnetworking:\n  serviceSubnet: " +
			serviceSubnet + "\n  podSubnet: " + podSubnet + "\n"}}
	if _, err := w.clients.CoreV1().ConfigMaps("kube-system").Create(context.Background(), cm, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}
