package cmd

import (
	"k8s.io/client-go/rest"

	"github.com/edgeadm/edgeadm/pkg/kubeconfig"
)

// Globals holds the values of the flags every command inherits from the root
// command. The root owns it and hands it to the commands that need it.
type Globals struct {
	// Kubeconfig is the value of --kubeconfig; empty means "look in the
	// usual places" (see package kubeconfig).
	Kubeconfig string
}

// RESTConfig loads the cluster's client configuration and returns the
// kubeconfig path it chose, so that commands can report it.
func (g *Globals) RESTConfig() (*rest.Config, string, error) {
	return kubeconfig.Load(g.Kubeconfig)
}
