package v1alpha1

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ConditionReady is the condition type that says whether the node's own
// kubelet is reporting.
const ConditionReady = "Ready"

// Reasons of the Ready condition.
const (
	// ReasonKubeletReporting: the kubelet renews its Lease in time.
	ReasonKubeletReporting = "KubeletReporting"
	// ReasonNodeDisconnected: the kubelet's Lease is stale; edge-controller
	// speaks for the node so its workloads are not evicted.
	ReasonNodeDisconnected = "NodeDisconnected"
	// ReasonMaxDisconnectExceeded: the node has been out of contact longer
	// than --max-disconnect; edge-controller no longer covers it and normal
	// eviction takes its course.
	ReasonMaxDisconnectExceeded = "MaxDisconnectExceeded"
	// ReasonNoHeartbeat: no kubelet Lease has been seen yet.
	ReasonNoHeartbeat = "NoHeartbeat"
)

// EdgeNode is edge-controller's view of one edge node; it has the Node's
// name and is owned by the Node.
//
// +genclient
// +genclient:nonNamespaced
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Cluster,shortName=en
// +kubebuilder:subresource:status
// +kubebuilder:printcolumn:name="Status",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`,description="Whether the node's own kubelet reports (True), or not (False)."
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`
// +kubebuilder:printcolumn:name="Last Heartbeat",type=date,JSONPath=`.status.lastHeartbeatTime`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type EdgeNode struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +optional
	Spec EdgeNodeSpec `json:"spec,omitempty"`
	// +optional
	Status EdgeNodeStatus `json:"status,omitempty"`
}

// EdgeNodeSpec is empty for now: the EdgeNode follows the Node of the same
// name, and edge-controller's flags set its policy.
type EdgeNodeSpec struct{}

// EdgeNodeStatus is the node's true state as edge-controller sees it.
type EdgeNodeStatus struct {
	// Conditions; Ready tells whether the node's own kubelet is reporting.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// LastHeartbeatTime is the last renewal of the node's Lease made by its
	// own kubelet (never one made by edge-controller).
	// +optional
	LastHeartbeatTime *metav1.Time `json:"lastHeartbeatTime,omitempty"`

	// DisconnectedSince is when the node's kubelet was last heard from
	// before it went out of contact; unset while it reports.
	// +optional
	DisconnectedSince *metav1.Time `json:"disconnectedSince,omitempty"`

	// CoveredSince is when edge-controller started speaking for the node
	// (renewing its Lease and keeping its Ready condition); unset while it
	// does not. A restarted controller resumes from it.
	// +optional
	CoveredSince *metav1.Time `json:"coveredSince,omitempty"`

	// NodeInfo is the node's basic facts, copied from the Node.
	// +optional
	NodeInfo EdgeNodeInfo `json:"nodeInfo,omitempty"`
}

// EdgeNodeInfo is a few facts about the node, copied from its Node.
type EdgeNodeInfo struct {
	// +optional
	KubeletVersion string `json:"kubeletVersion,omitempty"`
	// +optional
	Architecture string `json:"architecture,omitempty"`
	// +optional
	// +listType=atomic
	Addresses []corev1.NodeAddress `json:"addresses,omitempty"`
}

// EdgeNodeList is a list of EdgeNodes.
//
// +kubebuilder:object:root=true
type EdgeNodeList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []EdgeNode `json:"items"`
}
