package reset

import (
	"slices"
	"strings"
	"testing"

	"github.com/edgeadm/edgeadm/pkg/host"
)

// leftRedirect makes f answer iptables as a host where a killed edgehub
// left its redirect: the chain in the nat table, jumped to first from
// PREROUTING and OUTPUT, after kube-proxy's own.
func leftRedirect(f *host.Fake) {
	f.Respond = func(c host.Command) ([]byte, error) {
		if c.Name != "iptables" || !slices.Contains(c.Args, "-S") {
			return nil, nil
		}
		switch chain := c.Args[len(c.Args)-1]; chain {
		case "EDGEHUB-KUBERNETES":
			if slices.Contains(c.Args, "nat") {
				return []byte("-N EDGEHUB-KUBERNETES\n-A EDGEHUB-KUBERNETES -d 10.96.0.1/32 -p tcp -m tcp --dport 443 -j DNAT --to-destination 198.18.1.7:10270\n"), nil
			}
		case "PREROUTING", "OUTPUT":
			return []byte("-P " + chain + " ACCEPT\n-A " + chain + " -m comment --comment \"edgehub: kubernetes Service to the node's edgehub\" -j EDGEHUB-KUBERNETES\n-A " + chain + " -j KUBE-SERVICES\n"), nil
		}
		return nil, nil
	}
}

func TestResetRemovesALeftEdgeHubRedirect(t *testing.T) {
	f, _ := joined(t)
	leftRedirect(f)
	_, stderr, code := run(t, f, nil, false, 0, "-f")
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	if !strings.Contains(stderr, "remove iptables chain EDGEHUB-KUBERNETES") {
		t.Errorf("reset did not report removing the redirect:\n%s", stderr)
	}
	log := strings.Join(f.Log(), "\n")
	for _, want := range []string{
		"iptables -w -t nat -D PREROUTING 1", "iptables -w -t nat -D OUTPUT 1",
		"iptables -w -t nat -F EDGEHUB-KUBERNETES", "iptables -w -t nat -X EDGEHUB-KUBERNETES",
	} {
		if !strings.Contains(log, want) {
			t.Errorf("reset did not run %q; it ran:\n%s", want, log)
		}
	}
	if strings.Contains(log, "KUBE-SERVICES") || strings.Contains(log, "-D PREROUTING 2") {
		t.Errorf("reset touched kube-proxy's jump:\n%s", log)
	}
}

func TestResetDryRunOnlyNamesTheRedirect(t *testing.T) {
	f, _ := joined(t)
	leftRedirect(f)
	_, stderr, code := run(t, f, nil, false, 0, "--dry-run")
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	if !strings.Contains(stderr, "would run iptables -w -t nat -X EDGEHUB-KUBERNETES") {
		t.Errorf("dry run does not say it would remove the chain:\n%s", stderr)
	}
	for _, l := range f.Log() {
		if strings.Contains(l, "iptables") {
			t.Errorf("dry run ran %s", l)
		}
	}
}
