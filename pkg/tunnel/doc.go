// Package tunnel holds the pure parts of the cloud-edge tunnel
// (Konnectivity, docs/tunnel.md): what changes on a kubeadm master so that
// the API server sends its traffic to nodes through the proxy server, and
// how that change is undone exactly.
//
//   - EgressSelectorConfiguration: the file the API server reads, one
//     "cluster" selection over GRPC on a unix socket.
//   - ConfigureAPIServer: the kube-apiserver static pod manifest with the
//     flag and the two hostPath mounts added; a manifest that already has
//     them is returned unchanged.
//   - PatchClusterConfiguration: the same change in kubeadm-config's
//     ClusterConfiguration, so "kubeadm upgrade" regenerates the manifest
//     with it instead of dropping it.
//   - Master: the files of one master (backup outside the manifests folder,
//     byte-identical restore).
//   - CheckControlPlane: refusal, with what would work, where the control
//     plane is not kubeadm's.
//
// Nothing here talks to a cluster; the addon drives it.
package tunnel
