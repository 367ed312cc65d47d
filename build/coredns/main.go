// Command coredns is edge coredns: CoreDNS v1.15 with only the plugins the edge
// DaemonSet's Corefile uses (manifests/templates/55-edge-coredns.yaml), so the
// binary is small and its surface is what we deploy. make images builds it
// (scripts/images.sh); docs/images.md says why it is a custom build.
package main

import (
	"os"

	"github.com/coredns/caddy"
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/coremain"

	// The plugins register themselves in init; the order of the Corefile's
	// execution comes from directives below, not from import order.
	_ "github.com/coredns/coredns/plugin/bind"
	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/forward"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/hosts"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/loadbalance"
	_ "github.com/coredns/coredns/plugin/log"
	_ "github.com/coredns/coredns/plugin/loop"
	_ "github.com/coredns/coredns/plugin/ready"
	_ "github.com/coredns/coredns/plugin/reload"
)

// directives is CoreDNS's own plugin order (core/dnsserver/zdirectives.go)
// cut to the plugins linked in: a plugin runs in this order whatever the
// order in the Corefile.
var directives = []string{
	"reload",
	"bind",
	"ready",
	"health",
	"errors",
	"log",
	"loadbalance",
	"cache",
	"hosts",
	"kubernetes",
	"loop",
	"forward",
}

func init() {
	dnsserver.Directives = directives
}

func main() {
	// The Corefile comes through corefileLoader, which drops a forward to a
	// resolver file that lists no server (corefile.go). CoreDNS's own -conf
	// loader would load it too, and caddy refuses a Corefile loaded twice, so
	// the flag is taken out of the arguments before CoreDNS parses them.
	var path string
	path, os.Args = takeConfFlag(os.Args)
	caddy.RegisterCaddyfileLoader("edge", corefileLoader(path))
	coremain.Run()
}
