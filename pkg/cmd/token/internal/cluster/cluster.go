// Package cluster connects the token commands to the cluster.
package cluster

import (
	"fmt"

	"k8s.io/client-go/kubernetes"

	"github.com/edgeadm/edgeadm/pkg/cmd"
	"github.com/edgeadm/edgeadm/pkg/token"
)

// Connect loads the kubeconfig the global flags choose and returns the
// cluster the token library works on, with warnings going to stderr.
func Connect(g *cmd.Globals, streams cmd.IOStreams) (token.Cluster, error) {
	cfg, path, err := g.RESTConfig()
	if err != nil {
		return token.Cluster{}, err
	}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return token.Cluster{}, fmt.Errorf("make a client from kubeconfig %s: %w", path, err)
	}
	return token.Cluster{Client: client, REST: cfg, Warn: streams.ErrOut}, nil
}
