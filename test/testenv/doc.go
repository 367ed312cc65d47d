// Package testenv gives tests real Kubernetes parts: a control plane (etcd,
// kube-apiserver, kube-controller-manager, kube-scheduler) in its own network
// namespace, and edge hosts (systemd-nspawn machines with a real kubelet and
// containerd) each in a namespace of its own, linked to the control plane by a
// veth pair that a test can cut, restore and degrade.
//
// Network safety is the first rule of this package: every address it uses is in
// 198.18.0.0/15 (RFC 2544, reserved for benchmark testing), every namespace it
// makes has no default route, and the host namespace gets an "unreachable" route
// for each test subnet before any test address exists, so no packet of a test can
// ever leave the machine, even when a link is down.
//
// Binaries come from the cache built by scripts/test-env.sh (make test-env).
package testenv
