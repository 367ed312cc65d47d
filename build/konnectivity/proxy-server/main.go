// Command proxy-server is Konnectivity's proxy server (upstream cmd/server),
// built through its exported command.
package main

import (
	"sigs.k8s.io/apiserver-network-proxy/cmd/server/app"
	"sigs.k8s.io/apiserver-network-proxy/cmd/server/app/options"

	"github.com/edgeadm/edgeadm/build/konnectivity/internal/cli"
)

func main() {
	o := options.NewProxyRunOptions()
	cli.Run("proxy-server", app.NewProxyCommand(&app.Proxy{}, o), o.Flags())
}
