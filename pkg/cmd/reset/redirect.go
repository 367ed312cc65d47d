package reset

import (
	"context"

	"github.com/edgeadm/edgeadm/pkg/edgehub/redirect"
	"github.com/edgeadm/edgeadm/pkg/host"
	"github.com/edgeadm/edgeadm/pkg/journal"
)

// removeEdgeHubRedirect removes edgehub's redirect of the kubernetes Service
// (iptables chain EDGEHUB-KUBERNETES and the jumps to it) when it is still
// there. edgehub removes it itself when it stops cleanly, which the rollback
// made it do; this is for an edgehub that crashed or was killed. The chain is
// looked for on the real host (a read), changed through target (the dry run
// only prints). ok is false when there was nothing to remove.
func removeEdgeHubRedirect(ctx context.Context, h, target host.Host) (step journal.Step, ok bool) {
	look := func(ctx context.Context, bin string, args ...string) (string, error) {
		out, err := h.Output(ctx, host.Cmd(bin, args...))
		return string(out), err
	}
	if !redirect.Installed(ctx, look, "iptables") && !redirect.Installed(ctx, look, "ip6tables") {
		return journal.Step{}, false
	}
	change := func(ctx context.Context, bin string, args ...string) (string, error) {
		for _, a := range args {
			if a == "-S" {
				return look(ctx, bin, args...)
			}
		}
		out, err := target.Run(ctx, host.Cmd(bin, args...))
		return string(out), err
	}
	step = journal.Step{Undo: "remove iptables chain " + redirect.Chain + " and the jumps to it (edgehub's redirect of the kubernetes Service to the node)"}
	step.Err = redirect.Remove(ctx, change)
	return step, true
}
