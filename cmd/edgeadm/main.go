// Command edgeadm adds edge capabilities to a Kubernetes cluster and joins
// edge nodes to it.
package main

import "github.com/edgeadm/edgeadm/pkg/cmd/app"

func main() {
	app.Main()
}
