package phases

import (
	"fmt"

	"k8s.io/kubernetes/cmd/kubeadm/app/cmd/phases/workflow"

	"github.com/edgeadm/edgeadm/pkg/host"
)

// HostsBlock is the content of edgeadm's /etc/hosts block for an IP join.
func HostsBlock(t Target) []byte {
	return []byte(t.Host + " " + KubernetesDefault + "\n")
}

// NewHostsPhase maps kubernetes.default to the join address for an IP join:
// the API server's certificate rarely carries the public IP, but always
// carries kubernetes.default. A domain join needs no line.
func NewHostsPhase() workflow.Phase {
	return workflow.Phase{
		Name:         "hosts",
		Short:        "For an IP join, map kubernetes.default to the API server's address in /etc/hosts",
		InheritFlags: Flags,
		RunIf:        notJoined,
		Run: func(c workflow.RunData) error {
			d := c.(Data)
			t := d.Target()
			if !t.IsIP {
				fmt.Fprintf(d.Out(), "[hosts] Domain join: the node reaches the API server as %s, no /etc/hosts line needed\n", t.Host)
				return nil
			}
			if err := d.Host().SetBlock(d.Paths().Hosts, host.HostsMarker, HostsBlock(t)); err != nil {
				return err
			}
			fmt.Fprintf(d.Out(), "[hosts] %s now maps %s to %s\n", d.Paths().Hosts, KubernetesDefault, t.Host)
			return nil
		},
	}
}
