// Package cluster connects the token commands to the cluster.
package cluster

import (
	"fmt"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

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
	// JSON both ways: client-go logs bodies from -v=8 on, and the log
	// filter can scrub a token from JSON, not from a protobuf hex dump
	// (which generated clients would otherwise ask for).
	cfg = rest.CopyConfig(cfg)
	cfg.ContentType = runtime.ContentTypeJSON
	cfg.AcceptContentTypes = runtime.ContentTypeJSON
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return token.Cluster{}, fmt.Errorf("make a client from kubeconfig %s: %w", path, err)
	}
	return token.Cluster{Client: client, REST: cfg, Warn: streams.ErrOut}, nil
}
