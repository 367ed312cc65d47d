// Package v1alpha1 holds the EdgeNode API (edge.superedge.io/v1alpha1):
// edge-controller's record of one edge node's true state.
//
// The deepcopy functions and the CRD in manifests/templates are generated
// from these types by `make generate` (controller-gen, pinned in
// build/controller-gen); a unit test fails when they are stale.
//
// +kubebuilder:object:generate=true
// +groupName=edge.superedge.io
package v1alpha1
