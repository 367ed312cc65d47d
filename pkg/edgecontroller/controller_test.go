package edgecontroller

import (
	"context"
	"strings"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	"k8s.io/client-go/kubernetes/fake"
	coordinationlisters "k8s.io/client-go/listers/coordination/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"
	clocktesting "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"

	edgev1 "github.com/edgeadm/edgeadm/pkg/apis/edge/v1alpha1"
)

var t0 = time.Date(2026, 11, 22, 4, 0, 0, 0, time.UTC)

var testOpts = Options{GracePeriod: 40 * time.Second, MaxDisconnect: 10 * time.Minute, LeaseRenewInterval: 10 * time.Second, StatusUpdateInterval: time.Minute}

// world is a fake cluster; each Sync sees it through listers filled from
// the fake clients, the way informers would show it.
type world struct {
	t     *testing.T
	clock *clocktesting.FakeClock
	kube  *fake.Clientset
	dyn   *dynamicfake.FakeDynamicClient
}

func newWorld(t *testing.T, objs ...runtime.Object) *world {
	// An empty scheme: the fake then keeps EdgeNodes as unstructured, as
	// the real dynamic client returns them.
	s := runtime.NewScheme()
	return &world{t: t, clock: clocktesting.NewFakeClock(t0), kube: fake.NewClientset(objs...),
		dyn: dynamicfake.NewSimpleDynamicClientWithCustomListKinds(s, map[schema.GroupVersionResource]string{edgev1.Resource: "EdgeNodeList"})}
}

func edgeNode(name string, edge bool) *corev1.Node {
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, UID: types.UID("uid-" + name), Labels: map[string]string{}},
		Status: corev1.NodeStatus{
			NodeInfo:   corev1.NodeSystemInfo{KubeletVersion: "v1.37.1", Architecture: "amd64"},
			Addresses:  []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "198.18.1.10"}},
			Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady", LastHeartbeatTime: metav1.NewTime(t0)}},
		}}
	if edge {
		n.Labels["superedge.io/edge-node"] = "enable"
	}
	return n
}

func kubeletLease(name string, renew time.Time) *coordinationv1.Lease {
	return &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: NodeLeaseNamespace},
		Spec: coordinationv1.LeaseSpec{HolderIdentity: ptr.To(name), LeaseDurationSeconds: ptr.To[int32](40), RenewTime: ptr.To(metav1.NewMicroTime(renew))}}
}

// controller builds a Controller over the current state of the fake cluster
// (a fresh one each time: also what a restarted controller sees).
func (w *world) controller() *Controller {
	ctx := context.Background()
	nodes := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{})
	nl, _ := w.kube.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: EdgeNodeSelector.String()})
	for i := range nl.Items {
		_ = nodes.Add(&nl.Items[i])
	}
	leases := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc})
	ll, _ := w.kube.CoordinationV1().Leases(NodeLeaseNamespace).List(ctx, metav1.ListOptions{})
	for i := range ll.Items {
		_ = leases.Add(&ll.Items[i])
	}
	edge := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{})
	el, err := w.dyn.Resource(edgev1.Resource).List(ctx, metav1.ListOptions{})
	if err != nil {
		w.t.Fatal(err)
	}
	for i := range el.Items {
		_ = edge.Add(&el.Items[i])
	}
	return &Controller{Client: w.kube, Dynamic: w.dyn, Nodes: corelisters.NewNodeLister(nodes),
		Leases: coordinationlisters.NewLeaseLister(leases), Edge: cache.NewGenericLister(edge, edgev1.Resource.GroupResource()),
		Clock: w.clock, Opts: testOpts, Log: klog.Background()}
}

func (w *world) sync(name string) time.Duration {
	w.t.Helper()
	w.kube.ClearActions()
	w.dyn.ClearActions()
	after, err := w.controller().Sync(context.Background(), name)
	if err != nil {
		w.t.Fatalf("sync %s: %v", name, err)
	}
	return after
}

func (w *world) edgeNode(name string) *edgev1.EdgeNode {
	w.t.Helper()
	u, err := w.dyn.Resource(edgev1.Resource).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		w.t.Fatalf("EdgeNode %s: %v", name, err)
	}
	en, err := fromUnstructured(u)
	if err != nil {
		w.t.Fatal(err)
	}
	return en
}

func (w *world) node(name string) *corev1.Node {
	n, err := w.kube.CoreV1().Nodes().Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		w.t.Fatal(err)
	}
	return n
}

func (w *world) lease(name string) *coordinationv1.Lease {
	l, err := w.kube.CoordinationV1().Leases(NodeLeaseNamespace).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		w.t.Fatal(err)
	}
	return l
}

// kubeletRenews is the kubelet renewing its own Lease now, the way its
// lease controller does: a copy of the Lease it read with only renewTime set.
func (w *world) kubeletRenews(name string) {
	l := w.lease(name)
	l.Spec.RenewTime = ptr.To(metav1.NewMicroTime(w.clock.Now()))
	if _, err := w.kube.CoordinationV1().Leases(NodeLeaseNamespace).Update(context.Background(), l, metav1.UpdateOptions{}); err != nil {
		w.t.Fatal(err)
	}
}

func (w *world) writes() []string {
	var out []string
	for _, a := range w.kube.Actions() {
		if a.GetVerb() != "get" && a.GetVerb() != "list" && a.GetVerb() != "watch" {
			out = append(out, a.GetVerb()+" "+a.GetResource().Resource+subres(a))
		}
	}
	return out
}

func subres(a k8stesting.Action) string {
	if s := a.GetSubresource(); s != "" {
		return "/" + s
	}
	return ""
}

func ready(t *testing.T, en *edgev1.EdgeNode) metav1.Condition {
	t.Helper()
	for _, c := range en.Status.Conditions {
		if c.Type == edgev1.ConditionReady {
			return c
		}
	}
	t.Fatalf("EdgeNode %s has no Ready condition: %+v", en.Name, en.Status)
	return metav1.Condition{}
}

func nodeReady(n *corev1.Node) corev1.NodeCondition {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c
		}
	}
	return corev1.NodeCondition{}
}

func TestNonEdgeNodeIgnored(t *testing.T) {
	w := newWorld(t, edgeNode("cloud", false), kubeletLease("cloud", t0.Add(-time.Hour)))
	w.clock.SetTime(t0.Add(time.Hour))
	w.sync("cloud")
	if got := w.writes(); len(got) != 0 {
		t.Errorf("a non-edge node was written to: %v", got)
	}
	if l, _ := w.dyn.Resource(edgev1.Resource).List(context.Background(), metav1.ListOptions{}); len(l.Items) != 0 {
		t.Errorf("EdgeNodes for a non-edge node: %v", l.Items)
	}
	if ann := w.node("cloud").Annotations[CoveredByAnnotation]; ann != "" {
		t.Errorf("non-edge node annotated %q", ann)
	}
}

func TestConnectedNodeGetsEdgeNode(t *testing.T) {
	w := newWorld(t, edgeNode("e1", true), kubeletLease("e1", t0.Add(-5*time.Second)))
	after := w.sync("e1")
	en := w.edgeNode("e1")
	if c := ready(t, en); c.Status != metav1.ConditionTrue || c.Reason != edgev1.ReasonKubeletReporting {
		t.Errorf("Ready = %+v", c)
	}
	if len(en.OwnerReferences) != 1 || en.OwnerReferences[0].Kind != "Node" || en.OwnerReferences[0].UID != "uid-e1" {
		t.Errorf("ownerReferences = %+v", en.OwnerReferences)
	}
	if en.Status.NodeInfo.KubeletVersion != "v1.37.1" || en.Status.NodeInfo.Architecture != "amd64" || len(en.Status.NodeInfo.Addresses) != 1 {
		t.Errorf("nodeInfo = %+v", en.Status.NodeInfo)
	}
	if !en.Status.LastHeartbeatTime.Time.Equal(t0.Add(-5 * time.Second)) {
		t.Errorf("lastHeartbeatTime = %v", en.Status.LastHeartbeatTime)
	}
	if en.Status.CoveredSince != nil || en.Status.DisconnectedSince != nil {
		t.Errorf("connected node has coveredSince/disconnectedSince: %+v", en.Status)
	}
	if got := w.writes(); len(got) != 0 {
		t.Errorf("connected node: Node or Lease written: %v", got)
	}
	// Look again the moment the Lease goes silent.
	if want := testOpts.GracePeriod - StatusWriteAllowance - 5*time.Second; after != want {
		t.Errorf("requeue after %s, want %s", after, want)
	}
	// A second sync with nothing changed writes nothing at all.
	w.sync("e1")
	if n := len(w.dyn.Actions()); n != 1 { // the list behind the lister
		t.Errorf("idle resync made %d EdgeNode calls: %v", n, w.dyn.Actions())
	}
}

func TestNoLeaseYet(t *testing.T) {
	w := newWorld(t, edgeNode("e1", true))
	w.sync("e1")
	if c := ready(t, w.edgeNode("e1")); c.Status != metav1.ConditionUnknown || c.Reason != edgev1.ReasonNoHeartbeat {
		t.Errorf("Ready = %+v", c)
	}
	if got := w.writes(); len(got) != 0 {
		t.Errorf("writes = %v", got)
	}
}

// The whole outage: covered, renewed at its cadence, handed back.
func TestCoverAndHandBack(t *testing.T) {
	last := t0
	w := newWorld(t, edgeNode("e1", true), kubeletLease("e1", last))
	w.sync("e1")

	// Still within the grace period, before the write allowance: nothing changes.
	w.clock.SetTime(last.Add(testOpts.GracePeriod - StatusWriteAllowance - time.Millisecond))
	w.sync("e1")
	if got := w.writes(); len(got) != 0 {
		t.Fatalf("within the grace period: %v", got)
	}

	// From the write allowance on: disconnected, covered.
	w.clock.SetTime(last.Add(testOpts.GracePeriod - StatusWriteAllowance))
	coverStart := w.clock.Now()
	w.sync("e1")
	en := w.edgeNode("e1")
	if c := ready(t, en); c.Status != metav1.ConditionFalse || c.Reason != edgev1.ReasonNodeDisconnected {
		t.Errorf("Ready = %+v", c)
	}
	if !en.Status.CoveredSince.Time.Equal(coverStart) || !en.Status.DisconnectedSince.Time.Equal(last) || !en.Status.LastHeartbeatTime.Time.Equal(last) {
		t.Errorf("status = %+v", en.Status)
	}
	l := w.lease("e1")
	if *l.Spec.HolderIdentity != "e1" || !l.Spec.RenewTime.Time.Equal(coverStart) || l.Annotations[RenewedAnnotation] != FormatRenewTime(*l.Spec.RenewTime) || KubeletRenewed(l) {
		t.Errorf("Lease not renewed by edge-controller: %+v", l.Spec)
	}
	n := w.node("e1")
	if n.Annotations[CoveredByAnnotation] != Identity {
		t.Errorf("annotations = %v", n.Annotations)
	}
	nr := nodeReady(n)
	if nr.Status != corev1.ConditionTrue || nr.Reason != ReasonCovering || !strings.Contains(nr.Message, "edge-controller is reporting for it") ||
		!strings.Contains(nr.Message, last.Format(time.RFC3339)) || !nr.LastHeartbeatTime.Time.Equal(coverStart) {
		t.Errorf("Node Ready = %+v", nr)
	}
	if !nr.LastTransitionTime.Time.IsZero() {
		t.Errorf("Ready stayed True, its transition time must not move: %v", nr.LastTransitionTime)
	}

	// Before the renew interval: nothing to write.
	w.clock.Step(testOpts.LeaseRenewInterval - time.Second)
	w.sync("e1")
	if got := w.writes(); len(got) != 0 {
		t.Errorf("before the renew interval: %v", got)
	}
	// At it: the Lease only; the Ready condition at its own, slower, cadence.
	w.clock.Step(time.Second)
	w.sync("e1")
	if got := strings.Join(w.writes(), ","); got != "update leases" {
		t.Errorf("writes at the renew interval = %s", got)
	}
	w.clock.SetTime(coverStart.Add(testOpts.StatusUpdateInterval))
	w.sync("e1")
	if got := strings.Join(w.writes(), ","); got != "update leases,patch nodes/status" {
		t.Errorf("writes at the status interval = %s", got)
	}
	// The EdgeNode keeps the kubelet's heartbeat, not ours.
	if en := w.edgeNode("e1"); !en.Status.LastHeartbeatTime.Time.Equal(last) {
		t.Errorf("lastHeartbeatTime moved to %v", en.Status.LastHeartbeatTime)
	}

	// The kubelet is back: handed back at once.
	w.clock.Step(3 * time.Second)
	w.kubeletRenews("e1")
	back := w.clock.Now()
	w.sync("e1")
	en = w.edgeNode("e1")
	if c := ready(t, en); c.Status != metav1.ConditionTrue || c.Reason != edgev1.ReasonKubeletReporting {
		t.Errorf("Ready after hand-back = %+v", c)
	}
	if en.Status.CoveredSince != nil || en.Status.DisconnectedSince != nil || !en.Status.LastHeartbeatTime.Time.Equal(back) {
		t.Errorf("status after hand-back = %+v", en.Status)
	}
	if _, ok := w.node("e1").Annotations[CoveredByAnnotation]; ok {
		t.Errorf("annotation left after hand-back")
	}
	for _, wr := range w.writes() {
		if strings.HasPrefix(wr, "update leases") || wr == "patch nodes/status" {
			t.Errorf("after hand-back edge-controller still wrote: %s", wr)
		}
	}
	if l := w.lease("e1"); !l.Spec.RenewTime.Time.Equal(back) || !KubeletRenewed(l) {
		t.Errorf("the kubelet's renewal was overwritten: %+v", l.Spec)
	}
}

func TestPastMaxDisconnect(t *testing.T) {
	last := t0
	w := newWorld(t, edgeNode("e1", true), kubeletLease("e1", last))
	w.clock.SetTime(last.Add(testOpts.GracePeriod + time.Second))
	w.sync("e1")
	if w.node("e1").Annotations[CoveredByAnnotation] == "" {
		t.Fatal("not covered")
	}
	w.clock.SetTime(last.Add(testOpts.MaxDisconnect + time.Second))
	after := w.sync("e1")
	en := w.edgeNode("e1")
	if c := ready(t, en); c.Status != metav1.ConditionFalse || c.Reason != edgev1.ReasonMaxDisconnectExceeded {
		t.Errorf("Ready = %+v", c)
	}
	if en.Status.CoveredSince != nil || !en.Status.DisconnectedSince.Time.Equal(last) {
		t.Errorf("status = %+v", en.Status)
	}
	if _, ok := w.node("e1").Annotations[CoveredByAnnotation]; ok {
		t.Error("annotation kept past max-disconnect")
	}
	if after != 0 {
		t.Errorf("requeue after %s past max-disconnect; nothing more to do until a change", after)
	}
	// Much later, and after a restart: still not covered.
	w.clock.Step(time.Hour)
	w.sync("e1")
	for _, wr := range w.writes() {
		if wr != "create events" {
			t.Errorf("past max-disconnect edge-controller wrote: %s", wr)
		}
	}
}

// A controller restarted mid-outage rebuilds its state from the cluster
// alone: the same coveredSince, the kubelet's heartbeat, still covering,
// and the same deadline.
func TestRestartMidOutage(t *testing.T) {
	last := t0
	w := newWorld(t, edgeNode("e1", true), kubeletLease("e1", last))
	w.clock.SetTime(last.Add(testOpts.GracePeriod + time.Second))
	w.sync("e1")
	before := w.edgeNode("e1").Status

	// Every sync builds a new Controller from the objects (world.controller),
	// so this is a restart; the Lease now holds edge-controller's renewal.
	w.clock.Step(2 * time.Minute)
	w.sync("e1")
	after := w.edgeNode("e1").Status
	if !after.CoveredSince.Equal(before.CoveredSince) || !after.LastHeartbeatTime.Equal(before.LastHeartbeatTime) || !after.DisconnectedSince.Equal(before.DisconnectedSince) {
		t.Errorf("state changed across a restart:\nbefore %+v\nafter  %+v", before, after)
	}
	if l := w.lease("e1"); !l.Spec.RenewTime.Time.Equal(w.clock.Now()) {
		t.Errorf("restarted controller did not keep covering: %+v", l.Spec)
	}
	// The deadline is still counted from the kubelet's last heartbeat.
	w.clock.SetTime(last.Add(testOpts.MaxDisconnect + time.Second))
	w.sync("e1")
	if c := ready(t, w.edgeNode("e1")); c.Reason != edgev1.ReasonMaxDisconnectExceeded {
		t.Errorf("Ready = %+v", c)
	}
}

func TestNodeDeletedRemovesEdgeNode(t *testing.T) {
	w := newWorld(t, edgeNode("e1", true), kubeletLease("e1", t0))
	w.sync("e1")
	w.edgeNode("e1")
	if err := w.kube.CoreV1().Nodes().Delete(context.Background(), "e1", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	w.sync("e1")
	if _, err := w.dyn.Resource(edgev1.Resource).Get(context.Background(), "e1", metav1.GetOptions{}); err == nil {
		t.Error("EdgeNode kept after its Node was deleted")
	}
}

// The kubelet renews between edge-controller's read and its write: the
// update conflicts and the kubelet's renewal stands.
func TestRenewConflictKeepsKubeletRenewal(t *testing.T) {
	last := t0
	w := newWorld(t, edgeNode("e1", true), kubeletLease("e1", last))
	w.clock.SetTime(last.Add(testOpts.GracePeriod + time.Second))
	c := w.controller() // reads the stale Lease
	w.kubeletRenews("e1")
	w.kube.PrependReactor("update", "leases", func(a k8stesting.Action) (bool, runtime.Object, error) {
		l := a.(k8stesting.UpdateAction).GetObject().(*coordinationv1.Lease)
		if !KubeletRenewed(l) {
			return true, nil, errConflict
		}
		return false, nil, nil
	})
	if _, err := c.Sync(context.Background(), "e1"); err == nil {
		t.Fatal("a conflicting renewal was not reported")
	}
	if l := w.lease("e1"); !KubeletRenewed(l) {
		t.Errorf("Lease = %+v", l)
	}
}
