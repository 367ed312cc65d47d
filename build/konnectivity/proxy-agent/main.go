// Command proxy-agent is Konnectivity's proxy agent (upstream cmd/agent),
// built through its exported command.
package main

import (
	"sigs.k8s.io/apiserver-network-proxy/cmd/agent/app"
	"sigs.k8s.io/apiserver-network-proxy/cmd/agent/app/options"

	"github.com/edgeadm/edgeadm/build/konnectivity/internal/cli"
)

func main() {
	o := options.NewGrpcProxyAgentOptions()
	cli.Run("proxy-agent", app.NewAgentCommand(&app.Agent{}, o), o.Flags())
}
