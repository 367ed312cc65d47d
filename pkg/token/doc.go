// Package token makes, lists and deletes the kubeadm bootstrap tokens edge
// nodes join with, and builds the "edgeadm join" command that carries one.
//
// A token is kubeadm's: a Secret kube-system/bootstrap-token-<id> written by
// kubeadm's own BootstrapTokenToSecret, with kubeadm's defaults (24h, usages
// signing and authentication, group system:bootstrappers:kubeadm:default-node-token).
//
// Discovery on the edge host checks a JWS signature of kube-public/cluster-info
// made with the token. The controller-manager's bootstrapsigner normally adds it.
// Where none runs, Create adds the signature itself (kubeadm's format) and notes
// that it did in the edgeadm record (kube-system/edgeadm, key
// RecordKeyPrefix+"jws-kubeconfig-<id>"), never on the user's cluster-info;
// Delete removes exactly what was noted.
//
// The secret half of a token never reaches a log line or an error message: it
// lives in the Token type, which prints as "<id>.<redacted>" everywhere, and
// LogFilter scrubs bootstrap tokens from everything klog writes (client-go's
// request and response bodies included, at any -v).
package token
