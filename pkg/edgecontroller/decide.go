package edgecontroller

import (
	"fmt"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	edgev1 "github.com/edgeadm/edgeadm/pkg/apis/edge/v1alpha1"
)

// Phase is what edge-controller makes of one edge node at one moment.
type Phase string

const (
	// PhaseNoHeartbeat: the node has no kubelet Lease yet (just registered).
	PhaseNoHeartbeat Phase = "NoHeartbeat"
	// PhaseConnected: the kubelet renews its own Lease in time; edge-controller
	// only records what it sees.
	PhaseConnected Phase = "Connected"
	// PhaseCovering: the kubelet has been silent longer than the grace period
	// but not longer than max-disconnect; edge-controller renews the node's
	// Lease and keeps its Ready condition so its workloads are not evicted.
	PhaseCovering Phase = "Covering"
	// PhaseExpired: silent longer than max-disconnect; edge-controller lets
	// the node lifecycle controller take its normal course.
	PhaseExpired Phase = "Expired"
)

// Annotations and identities edge-controller writes.
const (
	// CoveredByAnnotation is on a Node while edge-controller speaks for it.
	CoveredByAnnotation = "edge.superedge.io/covered-by"
	// RenewedAnnotation is on a node's Lease once edge-controller has
	// renewed it: the renewTime it wrote. The kubelet renews by copying the
	// Lease it read and setting only spec.renewTime (holderIdentity is kept,
	// so it cannot tell the two apart), so a renewTime that differs from
	// this annotation is the kubelet's own. It survives a controller restart.
	RenewedAnnotation = "edge.superedge.io/renewed-by-edge-controller"
	// Identity is the value of CoveredByAnnotation and edge-controller's
	// field manager.
	Identity = "edge-controller"
	// ReasonCovering is the reason of the Node's Ready condition while
	// edge-controller speaks for the node.
	ReasonCovering = "EdgeControllerCovering"
)

// StatusWriteAllowance is how long before the end of the grace period
// edge-controller already calls a kubelet silent. The grace period is a
// promise about the EdgeNode: it says NotReady no later than the kubelet's
// last Lease renewal plus the grace period. Deciding at exactly that moment
// would write the status a little after it (the work queue's wake-up, the
// status write), so the decision is made this much earlier.
const StatusWriteAllowance = time.Second

// Options are edge-controller's timing policy.
type Options struct {
	// GracePeriod: the EdgeNode of a node whose kubelet has not renewed its
	// Lease for this long says NotReady (decided StatusWriteAllowance
	// earlier, see there). Keep it above the kubelet's renew interval (10s)
	// plus StatusWriteAllowance, or a healthy node flaps, and below the
	// controller-manager's --node-monitor-grace-period (50s by default), or
	// the node lifecycle controller marks the node NotReady first.
	GracePeriod time.Duration
	// MaxDisconnect: how long a silent node is covered, counted from its
	// kubelet's last heartbeat.
	MaxDisconnect time.Duration
	// LeaseRenewInterval: how often a covered node's Lease is renewed
	// (the kubelet's own cadence is 10s).
	LeaseRenewInterval time.Duration
	// StatusUpdateInterval: how often a covered node's Ready condition gets
	// a fresh heartbeat (the kubelet reports status at least every 5m).
	StatusUpdateInterval time.Duration
	// ClusterDomain is the cluster's DNS domain: edgehub's kubernetes
	// Service certificate may name kubernetes.default.svc.<ClusterDomain>
	// (approver.go). Empty: cluster.local.
	ClusterDomain string
}

// DefaultOptions are the documented defaults.
func DefaultOptions() Options {
	return Options{GracePeriod: 40 * time.Second, MaxDisconnect: 24 * time.Hour,
		LeaseRenewInterval: 10 * time.Second, StatusUpdateInterval: time.Minute, ClusterDomain: DefaultClusterDomain}
}

// Validate checks the options make sense together.
func (o Options) Validate() error {
	switch {
	case o.GracePeriod <= 2*StatusWriteAllowance:
		return fmt.Errorf("--grace-period must be longer than %s, got %s", 2*StatusWriteAllowance, o.GracePeriod)
	case o.MaxDisconnect <= o.GracePeriod:
		return fmt.Errorf("--max-disconnect (%s) must be longer than --grace-period (%s)", o.MaxDisconnect, o.GracePeriod)
	case o.LeaseRenewInterval <= 0 || o.LeaseRenewInterval >= o.GracePeriod:
		return fmt.Errorf("--lease-renew-interval (%s) must be positive and shorter than --grace-period (%s)", o.LeaseRenewInterval, o.GracePeriod)
	case o.StatusUpdateInterval <= 0:
		return fmt.Errorf("--status-update-interval must be positive, got %s", o.StatusUpdateInterval)
	}
	return nil
}

// silentAfter is how long a kubelet may go without renewing its Lease before
// Decide calls it silent: the grace period less StatusWriteAllowance.
func (o Options) silentAfter() time.Duration { return o.GracePeriod - StatusWriteAllowance }

// Observation is what the cluster holds about one edge node.
type Observation struct {
	Now      time.Time
	Node     *corev1.Node
	Lease    *coordinationv1.Lease // nil: no Lease yet
	EdgeNode *edgev1.EdgeNode      // nil: not created yet
}

// Decision is what to do about one edge node; Decide makes it, the
// controller carries it out.
type Decision struct {
	Phase Phase
	// Status is the EdgeNode status wanted.
	Status edgev1.EdgeNodeStatus
	// RenewLease: renew the node's Lease in the kubelet's stead now.
	RenewLease bool
	// ReportReady: write the Node's Ready condition with a fresh heartbeat.
	ReportReady bool
	// Annotate / Unannotate the Node with CoveredByAnnotation.
	Annotate, Unannotate bool
	// RequeueAfter: look again after this long (0: only on a change).
	RequeueAfter time.Duration
}

// KubeletRenewed says whether the Lease was last renewed by the kubelet
// (not by edge-controller): its renewTime is not the one edge-controller
// recorded in RenewedAnnotation.
func KubeletRenewed(l *coordinationv1.Lease) bool {
	return l != nil && l.Spec.RenewTime != nil && l.Annotations[RenewedAnnotation] != FormatRenewTime(*l.Spec.RenewTime)
}

// FormatRenewTime is how a renewTime is written into RenewedAnnotation: the
// precision the API server keeps (microseconds), in UTC.
func FormatRenewTime(t metav1.MicroTime) string {
	return t.UTC().Format(metav1.RFC3339Micro)
}

// Decide is edge-controller's state logic, a pure function of the cluster's
// objects and the time: a restarted controller decides the same from the
// same objects.
func Decide(o Observation, opts Options) Decision {
	now := metav1.NewTime(o.Now)
	var prev edgev1.EdgeNodeStatus
	if o.EdgeNode != nil {
		prev = *o.EdgeNode.Status.DeepCopy()
	}
	st := prev.DeepCopy()
	st.NodeInfo = nodeInfo(o.Node)

	// The kubelet's last heartbeat: its own Lease renewal, else what was
	// recorded before edge-controller started renewing the Lease itself.
	var hb *metav1.Time
	if KubeletRenewed(o.Lease) {
		t := metav1.NewTime(o.Lease.Spec.RenewTime.Time)
		hb = &t
	} else if prev.LastHeartbeatTime != nil {
		hb = prev.LastHeartbeatTime.DeepCopy()
	}
	if hb != nil && (st.LastHeartbeatTime == nil || hb.After(st.LastHeartbeatTime.Time) || KubeletRenewed(o.Lease)) {
		st.LastHeartbeatTime = hb
	}
	annotated := o.Node.Annotations[CoveredByAnnotation] != ""

	d := Decision{}
	if hb == nil {
		if o.Lease != nil && !KubeletRenewed(o.Lease) {
			// Our Lease but no record of the kubelet's heartbeat (the
			// EdgeNode was lost): count from when covering began, else now.
			since := now
			if prev.CoveredSince != nil {
				since = *prev.CoveredSince
			}
			hb = &since
			st.LastHeartbeatTime = nil
		} else {
			d.Phase = PhaseNoHeartbeat
			setReady(st, metav1.ConditionUnknown, edgev1.ReasonNoHeartbeat, "the kubelet has not renewed its Lease yet", now)
			st.CoveredSince, st.DisconnectedSince = nil, nil
			d.Unannotate = annotated
			d.RequeueAfter = opts.GracePeriod
			d.Status = *st
			return d
		}
	}

	silent := o.Now.Sub(hb.Time)
	switch {
	case silent < opts.silentAfter() && KubeletRenewed(o.Lease):
		d.Phase = PhaseConnected
		setReady(st, metav1.ConditionTrue, edgev1.ReasonKubeletReporting, "the kubelet renews its Lease", now)
		st.DisconnectedSince, st.CoveredSince = nil, nil
		d.Unannotate = annotated
		// Look again at the very moment the Lease goes silent (the
		// kubelet's renewTime, as the Lease holds it, plus silentAfter):
		// no margin past it, so NotReady is written within the grace period.
		d.RequeueAfter = opts.silentAfter() - silent
	case silent < opts.MaxDisconnect:
		d.Phase = PhaseCovering
		if st.DisconnectedSince == nil {
			st.DisconnectedSince = hb.DeepCopy()
		}
		if st.CoveredSince == nil {
			st.CoveredSince = now.DeepCopy()
		}
		setReady(st, metav1.ConditionFalse, edgev1.ReasonNodeDisconnected,
			fmt.Sprintf("the kubelet has not renewed its Lease since %s; edge-controller reports for the node until %s",
				hb.UTC().Format(time.RFC3339), hb.Add(opts.MaxDisconnect).UTC().Format(time.RFC3339)), now)
		d.Annotate = !annotated
		d.RenewLease = leaseDue(o.Lease, o.Now, opts.LeaseRenewInterval)
		d.ReportReady = readyDue(o.Node, o.Now, opts.StatusUpdateInterval)
		next := opts.LeaseRenewInterval
		if rest := opts.MaxDisconnect - silent; rest < next {
			next = rest
		}
		d.RequeueAfter = next
	default:
		d.Phase = PhaseExpired
		if st.DisconnectedSince == nil {
			st.DisconnectedSince = hb.DeepCopy()
		}
		st.CoveredSince = nil
		setReady(st, metav1.ConditionFalse, edgev1.ReasonMaxDisconnectExceeded,
			fmt.Sprintf("the kubelet has not renewed its Lease since %s, longer than --max-disconnect %s; edge-controller no longer reports for the node",
				hb.UTC().Format(time.RFC3339), opts.MaxDisconnect), now)
		d.Unannotate = annotated
	}
	d.Status = *st
	return d
}

func leaseDue(l *coordinationv1.Lease, now time.Time, every time.Duration) bool {
	if l == nil {
		return false // the kubelet makes the Lease; edge-controller only renews it
	}
	if KubeletRenewed(l) || l.Spec.RenewTime == nil {
		return true
	}
	return now.Sub(l.Spec.RenewTime.Time) >= every
}

func readyDue(n *corev1.Node, now time.Time, every time.Duration) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status != corev1.ConditionTrue || c.Reason != ReasonCovering || now.Sub(c.LastHeartbeatTime.Time) >= every
		}
	}
	return true
}

// setReady sets the Ready condition; its transition time changes only with
// its status (meta.SetStatusCondition's rule).
func setReady(st *edgev1.EdgeNodeStatus, s metav1.ConditionStatus, reason, msg string, now metav1.Time) {
	meta.SetStatusCondition(&st.Conditions, metav1.Condition{Type: edgev1.ConditionReady, Status: s, Reason: reason, Message: msg, LastTransitionTime: now})
}

func nodeInfo(n *corev1.Node) edgev1.EdgeNodeInfo {
	info := edgev1.EdgeNodeInfo{KubeletVersion: n.Status.NodeInfo.KubeletVersion, Architecture: n.Status.NodeInfo.Architecture}
	if len(n.Status.Addresses) > 0 {
		info.Addresses = append([]corev1.NodeAddress(nil), n.Status.Addresses...)
	}
	return info
}

// NodeReadyCondition is the Ready condition edge-controller writes on a
// covered Node: True, so the node lifecycle controller does not taint and
// evict it, with a reason and message that tell a human who speaks.
func NodeReadyCondition(n *corev1.Node, st edgev1.EdgeNodeStatus, now time.Time) corev1.NodeCondition {
	since := "an unknown time"
	if st.DisconnectedSince != nil {
		since = st.DisconnectedSince.UTC().Format(time.RFC3339)
	}
	c := corev1.NodeCondition{Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: ReasonCovering,
		Message:           fmt.Sprintf("kubelet unreachable since %s; edge-controller is reporting for it (see EdgeNode %s)", since, n.Name),
		LastHeartbeatTime: metav1.NewTime(now), LastTransitionTime: metav1.NewTime(now)}
	for _, old := range n.Status.Conditions {
		if old.Type == corev1.NodeReady && old.Status == corev1.ConditionTrue {
			c.LastTransitionTime = old.LastTransitionTime
		}
	}
	return c
}
