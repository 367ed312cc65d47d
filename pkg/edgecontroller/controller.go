// Package edgecontroller keeps one EdgeNode per edge node (Nodes labelled
// superedge.io/edge-node=enable) with the node's true state, and keeps a
// merely disconnected edge node from being evicted by speaking for it: it
// renews the node's Lease and keeps its Ready condition True, visibly (an
// annotation on the Node and a Ready reason of EdgeControllerCovering), until
// the kubelet reports again or --max-disconnect has passed.
//
// Decide (decide.go) is the state logic, a pure function of the objects and
// the time; Controller carries its decisions out; Component (component.go)
// runs it under leader election with explicit states.
package edgecontroller

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	coordinationlisters "k8s.io/client-go/listers/coordination/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"

	"github.com/edgeadm/edgeadm/manifests"
	edgev1 "github.com/edgeadm/edgeadm/pkg/apis/edge/v1alpha1"
)

// NodeLeaseNamespace is where kubelets keep their Leases.
const NodeLeaseNamespace = corev1.NamespaceNodeLease

// EdgeNodeSelector selects the Nodes edge-controller looks after; it never
// sees, let alone touches, any other Node.
var EdgeNodeSelector = labels.SelectorFromSet(labels.Set{manifests.EdgeNodeLabel: manifests.EdgeNodeLabelValue})

// Controller carries out Decide's decisions for one node at a time.
type Controller struct {
	Client  kubernetes.Interface
	Dynamic dynamic.Interface
	Nodes   corelisters.NodeLister          // edge nodes only
	Leases  coordinationlisters.LeaseLister // kube-node-lease
	Edge    cache.GenericLister             // EdgeNodes
	Clock   clock.PassiveClock
	Opts    Options
	Log     klog.Logger
}

func (c *Controller) edgeNodes() dynamic.ResourceInterface {
	return c.Dynamic.Resource(edgev1.Resource)
}

// Sync brings one node's EdgeNode, Lease, Node condition and annotation to
// what Decide wants, and says when to look again.
func (c *Controller) Sync(ctx context.Context, name string) (time.Duration, error) {
	node, err := c.Nodes.Get(name)
	if apierrors.IsNotFound(err) || (err == nil && !EdgeNodeSelector.Matches(labels.Set(node.Labels))) {
		return 0, c.deleteEdgeNode(ctx, name)
	}
	if err != nil {
		return 0, err
	}
	lease, err := c.Leases.Leases(NodeLeaseNamespace).Get(name)
	if apierrors.IsNotFound(err) {
		lease = nil
	} else if err != nil {
		return 0, err
	}
	en, err := c.getEdgeNode(name)
	if err != nil {
		return 0, err
	}
	now := c.Clock.Now()
	d := Decide(Observation{Now: now, Node: node, Lease: lease, EdgeNode: en}, c.Opts)

	// Order matters for a restart in between: the EdgeNode (with coveredSince
	// and the kubelet's last heartbeat) is written before the Lease is renewed
	// in the kubelet's stead, since after that the Lease no longer holds it.
	if en == nil {
		if en, err = c.createEdgeNode(ctx, node); err != nil {
			return 0, err
		}
	}
	if !apiequality.Semantic.DeepEqual(en.Status, d.Status) {
		if err := c.updateStatus(ctx, en, d.Status); err != nil {
			return 0, err
		}
	}
	var errs []error
	if d.Annotate {
		errs = append(errs, c.annotate(ctx, name, Identity))
		c.event(ctx, node, corev1.EventTypeWarning, edgev1.ReasonNodeDisconnected, readyMessage(d.Status))
	}
	if d.RenewLease {
		errs = append(errs, c.renewLease(ctx, lease, now))
	}
	if d.ReportReady {
		errs = append(errs, c.reportReady(ctx, node, d.Status, now))
	}
	if d.Unannotate {
		errs = append(errs, c.annotate(ctx, name, ""))
		if d.Phase == PhaseExpired {
			c.event(ctx, node, corev1.EventTypeWarning, edgev1.ReasonMaxDisconnectExceeded, readyMessage(d.Status))
		} else {
			c.event(ctx, node, corev1.EventTypeNormal, edgev1.ReasonKubeletReporting, "the kubelet reports again; edge-controller stopped reporting for the node")
		}
	}
	if d.Phase == PhaseCovering || d.Unannotate || d.Annotate {
		c.Log.V(1).Info("synced", "node", name, "phase", d.Phase, "renewLease", d.RenewLease, "reportReady", d.ReportReady)
	}
	return d.RequeueAfter, errors.Join(errs...)
}

func readyMessage(st edgev1.EdgeNodeStatus) string {
	for _, c := range st.Conditions {
		if c.Type == edgev1.ConditionReady {
			return c.Message
		}
	}
	return ""
}

func (c *Controller) getEdgeNode(name string) (*edgev1.EdgeNode, error) {
	obj, err := c.Edge.Get(name)
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return fromUnstructured(obj)
}

func fromUnstructured(obj runtime.Object) (*edgev1.EdgeNode, error) {
	u, ok := obj.(*unstructured.Unstructured)
	if !ok {
		return nil, fmt.Errorf("EdgeNode cache holds a %T", obj)
	}
	en := &edgev1.EdgeNode{}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, en); err != nil {
		return nil, fmt.Errorf("decode EdgeNode %s: %w", u.GetName(), err)
	}
	return en, nil
}

func toUnstructured(en *edgev1.EdgeNode) (*unstructured.Unstructured, error) {
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(en)
	if err != nil {
		return nil, err
	}
	u := &unstructured.Unstructured{Object: m}
	u.SetAPIVersion(edgev1.SchemeGroupVersion.String())
	u.SetKind("EdgeNode")
	return u, nil
}

func (c *Controller) createEdgeNode(ctx context.Context, node *corev1.Node) (*edgev1.EdgeNode, error) {
	en := &edgev1.EdgeNode{ObjectMeta: metav1.ObjectMeta{
		Name:   node.Name,
		Labels: map[string]string{"app.kubernetes.io/managed-by": "edge-controller"},
		// The Node owns its EdgeNode: the garbage collector removes it too.
		OwnerReferences: []metav1.OwnerReference{{APIVersion: "v1", Kind: "Node", Name: node.Name, UID: node.UID}},
	}}
	u, err := toUnstructured(en)
	if err != nil {
		return nil, err
	}
	out, err := c.edgeNodes().Create(ctx, u, metav1.CreateOptions{FieldManager: Identity})
	if apierrors.IsAlreadyExists(err) {
		out, err = c.edgeNodes().Get(ctx, node.Name, metav1.GetOptions{})
	}
	if err != nil {
		return nil, fmt.Errorf("create EdgeNode %s: %w", node.Name, err)
	}
	c.Log.Info("EdgeNode created", "node", node.Name)
	return fromUnstructured(out)
}

func (c *Controller) updateStatus(ctx context.Context, en *edgev1.EdgeNode, st edgev1.EdgeNodeStatus) error {
	en = en.DeepCopy()
	en.Status = st
	u, err := toUnstructured(en)
	if err != nil {
		return err
	}
	if _, err := c.edgeNodes().UpdateStatus(ctx, u, metav1.UpdateOptions{FieldManager: Identity}); err != nil {
		return fmt.Errorf("update EdgeNode %s status: %w", en.Name, err)
	}
	return nil
}

func (c *Controller) deleteEdgeNode(ctx context.Context, name string) error {
	if _, err := c.Edge.Get(name); apierrors.IsNotFound(err) {
		return nil
	}
	err := c.edgeNodes().Delete(ctx, name, metav1.DeleteOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("delete EdgeNode %s: %w", name, err)
	}
	c.Log.Info("EdgeNode deleted with its Node", "node", name)
	return nil
}

// renewLease renews the node's Lease in the kubelet's stead, and records
// the renewTime it wrote in RenewedAnnotation (holderIdentity stays the
// node's). The update carries the cached resourceVersion: if the kubelet
// renewed meanwhile, the write fails with a conflict and the kubelet's
// renewal stands.
func (c *Controller) renewLease(ctx context.Context, lease *coordinationv1.Lease, now time.Time) error {
	l := lease.DeepCopy()
	t := metav1.NewMicroTime(now.Truncate(time.Microsecond))
	l.Spec.RenewTime = &t
	if l.Annotations == nil {
		l.Annotations = map[string]string{}
	}
	l.Annotations[RenewedAnnotation] = FormatRenewTime(t)
	if _, err := c.Client.CoordinationV1().Leases(l.Namespace).Update(ctx, l, metav1.UpdateOptions{FieldManager: Identity}); err != nil {
		return fmt.Errorf("renew Lease %s/%s: %w", l.Namespace, l.Name, err)
	}
	return nil
}

// reportReady writes the Node's Ready condition (a strategic merge patch
// keyed on the condition type, so the other conditions are left alone).
func (c *Controller) reportReady(ctx context.Context, node *corev1.Node, st edgev1.EdgeNodeStatus, now time.Time) error {
	cond := NodeReadyCondition(node, st, now)
	patch, err := json.Marshal(map[string]any{"status": map[string]any{"conditions": []corev1.NodeCondition{cond}}})
	if err != nil {
		return err
	}
	if _, err := c.Client.CoreV1().Nodes().PatchStatus(ctx, node.Name, patch); err != nil {
		return fmt.Errorf("report Ready for Node %s: %w", node.Name, err)
	}
	return nil
}

// annotate sets (value != "") or removes CoveredByAnnotation on the Node.
func (c *Controller) annotate(ctx context.Context, name, value string) error {
	var v any
	if value != "" {
		v = value
	}
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]any{CoveredByAnnotation: v}}})
	if err != nil {
		return err
	}
	if _, err := c.Client.CoreV1().Nodes().Patch(ctx, name, types.MergePatchType, patch, metav1.PatchOptions{FieldManager: Identity}); err != nil {
		return fmt.Errorf("annotate Node %s: %w", name, err)
	}
	return nil
}

// event records an Event on the Node; a failure is only logged.
func (c *Controller) event(ctx context.Context, node *corev1.Node, typ, reason, msg string) {
	now := metav1.NewTime(c.Clock.Now())
	ev := &corev1.Event{
		ObjectMeta:     metav1.ObjectMeta{GenerateName: node.Name + ".", Namespace: metav1.NamespaceDefault},
		InvolvedObject: corev1.ObjectReference{Kind: "Node", APIVersion: "v1", Name: node.Name, UID: types.UID(node.Name)},
		Type:           typ, Reason: reason, Message: msg, Count: 1,
		FirstTimestamp: now, LastTimestamp: now,
		Source: corev1.EventSource{Component: Identity},
	}
	if _, err := c.Client.CoreV1().Events(metav1.NamespaceDefault).Create(ctx, ev, metav1.CreateOptions{}); err != nil {
		c.Log.Error(err, "record event", "node", node.Name, "reason", reason)
	}
}
