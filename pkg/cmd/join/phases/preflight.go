package phases

import (
	"encoding/json"
	"fmt"
	"strings"

	"k8s.io/kubernetes/cmd/kubeadm/app/cmd/phases/workflow"

	"github.com/edgeadm/edgeadm/pkg/cmd/exitcode"
	"github.com/edgeadm/edgeadm/pkg/journal"
	"github.com/edgeadm/edgeadm/pkg/preflight"
)

// NewPreflightPhase checks the host and the cluster; it changes nothing.
func NewPreflightPhase() workflow.Phase {
	return workflow.Phase{
		Name:  "preflight",
		Short: "Check the host and the cluster before changing anything",
		Long: `Check, without changing anything, that this host can become an edge node:
root, systemd, free ports, swap, kernel modules and sysctls, no leftovers of an
earlier join, the API server reachable, its certificate valid for the name the
node will use, the token and the CA hash right, and the cluster's kubelet
configuration usable on this host.`,
		InheritFlags: Flags,
		Run:          runPreflight,
	}
}

func runPreflight(c workflow.RunData) error {
	d := c.(Data)
	fmt.Fprintln(d.Out(), "[preflight] Running pre-flight checks")
	if err := checkJournal(d); err != nil {
		return exitcode.New(exitcode.PreflightFailed, err)
	}
	if d.AlreadyJoined() {
		fmt.Fprintf(d.Out(), "[preflight] This host already joined %s as node %q with these parameters and its kubelet is healthy: nothing to do\n",
			d.Target().Endpoint, d.NodeName())
		return nil
	}
	res, err := preflight.Run(d.Context(), Checks(d), d.IgnorePreflightErrors(), d.Out())
	for _, w := range res.Warnings {
		d.Warn("", w)
	}
	if err != nil {
		return exitcode.New(exitcode.PreflightFailed, err)
	}
	return nil
}

// Checks are every preflight check, in the order they run. The cluster
// checks come last and stop early when the API server cannot be reached.
func Checks(d Data) []preflight.Check {
	checks := []preflight.Check{
		isPrivilegedUser(d),
		systemdCheck(d),
	}
	if !d.Resuming() {
		// An interrupted join of ours holds these; continuing it is fine.
		checks = append(checks, leftoverChecks(d)...)
		checks = append(checks, portCheck(d, KubeletPort, "the kubelet"), portCheck(d, KubeletHealthzPort, "the kubelet"),
			portCheck(d, EdgeHubPort, "edgehub"), portCheck(d, EdgeHubHealthPort, "edgehub"),
			portCheck(d, EdgeHubInClusterPort, "edgehub's face for the node's pods"), containerRuntimeCheck(d))
	}
	checks = append(checks,
		swapCheck(d),
		kernelModuleCheck(d, kernelModules[0]),
		kernelModuleCheck(d, kernelModules[1]),
		sysctlCheck(d),
		hostsFileCheck(d),
		nodeNameCheck(d),
		nodeIPCheck(d),
	)
	checks = append(checks, clusterChecks(d)...)
	return append(checks, nodeIPConflictCheck(d))
}

// checkJournal decides from the journal what this join is: the first, a
// no-op repeat of a completed one, or the continuation of an interrupted
// one. Anything else (another join's leftovers) is refused.
func checkJournal(d Data) error {
	j := d.Journal()
	params, err := json.Marshal(d.Params())
	if err != nil {
		return err
	}
	if c := j.Completion(); c != nil {
		if !journal.SameParams(c.Params, params) {
			return fmt.Errorf("this host already joined a cluster with other parameters (%s): run \"edgeadm reset\" first to join it again", describeParams(c.Params))
		}
		if err := healthy(d); err != nil {
			return fmt.Errorf("this host joined %s as node %q earlier, but its kubelet is not healthy: %w; look at \"journalctl -u kubelet\", or run \"edgeadm reset\" and join again",
				d.Target().Endpoint, d.NodeName(), err)
		}
		d.SetAlreadyJoined(true)
		return nil
	}
	runs := j.Runs()
	if len(runs) == 0 && len(j.Entries()) == 0 {
		return nil
	}
	if len(runs) > 0 && journal.SameParams(runs[len(runs)-1].Params, params) {
		last := runs[len(runs)-1]
		d.Warn("Resume", fmt.Sprintf("continuing the join of %s that was interrupted (run %d, started %s)", d.Target().Endpoint, last.Run, last.Started.Format("2006-01-02 15:04:05 MST")))
		d.SetResuming(true)
		return nil
	}
	what := "unknown parameters"
	if len(runs) > 0 {
		what = describeParams(runs[len(runs)-1].Params)
	}
	return fmt.Errorf("an earlier edgeadm join (%s) did not finish and was not rolled back: run \"edgeadm reset\" first", what)
}

func healthy(d Data) error {
	s, err := d.Host().UnitState(d.Context(), "kubelet.service")
	if err != nil {
		return err
	}
	if !s.IsActive() {
		return fmt.Errorf("kubelet.service is %s", s.Active)
	}
	if _, err := d.Host().Lstat(d.Paths().KubeletKubeconfig); err != nil {
		return fmt.Errorf("%s is missing", d.Paths().KubeletKubeconfig)
	}
	return d.Env().KubeletHealthy(d.Context())
}

func describeParams(raw json.RawMessage) string {
	var p Params
	if err := json.Unmarshal(raw, &p); err != nil {
		return "unreadable parameters"
	}
	parts := []string{"endpoint " + p.Endpoint, "node " + p.NodeName}
	if p.InstallPkgPath != "" {
		parts = append(parts, "package "+p.InstallPkgPath)
	}
	return strings.Join(parts, ", ")
}

// errorf is a finding: what is wrong, then how to fix it.
func errorf(format string, args ...any) error { return fmt.Errorf(format, args...) }

// joinErrs flattens a list for a check's return.
func one(err error) []error {
	if err == nil {
		return nil
	}
	return []error{err}
}
