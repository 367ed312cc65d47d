package testenv

import (
	"context"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestNATEdgeCannotBeDialledFromTheCloud proves what the tunnel is for: a
// kubelet port open on an edge host behind the NAT cannot be reached from
// the control plane's namespace, not even with a route to the private
// subnet, while the edge host reaches the cloud and gets its replies.
func TestNATEdgeCannotBeDialledFromTheCloud(t *testing.T) {
	requireRoot(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	n, err := NewNetwork(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := n.Teardown(context.Background()); err != nil {
			t.Error(err)
		}
	})
	e, err := n.AddNATEdge(ctx, "natedge")
	if err != nil {
		t.Fatal(err)
	}
	for _, ns := range []string{e.NS, e.NATNS} {
		if routes, err := output(ctx, "ip", "-n", ns, "route", "show", "table", "all"); err != nil || strings.Contains(routes, "default") {
			t.Errorf("namespace %s has a default route (test traffic could leave the machine) or none could be read (%v):\n%s", ns, err, routes)
		}
	}

	listen := func(ns, addr string) {
		t.Helper()
		lis := exec.Command("nsenter", "--net=/run/netns/"+ns, "--", os.Args[0])
		lis.Env = append(os.Environ(), "EDGEADM_TESTENV_HELPER=listen:"+addr)
		stdout, _ := lis.StdoutPipe()
		if err := lis.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = lis.Process.Kill(); _ = lis.Wait() })
		if _, err := stdout.Read(make([]byte, 10)); err != nil {
			t.Fatalf("listener at %s in %s did not start: %v", addr, ns, err)
		}
	}
	echo := func(ns, addr string) error {
		c := exec.CommandContext(ctx, "nsenter", "--net=/run/netns/"+ns, "--", os.Args[0])
		c.Env = append(os.Environ(), "EDGEADM_TESTENV_HELPER=dial:"+addr)
		if out, err := c.CombinedOutput(); err != nil {
			return &dialError{addr: addr, out: strings.TrimSpace(string(out))}
		}
		return nil
	}
	kubelet := net.JoinHostPort(e.IP.String(), "10250")
	listen(e.NS, "0.0.0.0:10250")
	if err := echo(e.NS, kubelet); err != nil {
		t.Fatalf("the edge host's own listener does not answer (the test would prove nothing): %v", err)
	}

	// Outbound works, and the cloud has no route to the private subnet, so
	// the replies found their way back only through the masquerade.
	cloud := net.JoinHostPort(n.CloudIP.String(), "7777")
	listen(n.CloudNS, cloud)
	if err := echo(e.NS, cloud); err != nil {
		t.Errorf("the edge host cannot reach the cloud through the NAT: %v", err)
	}

	// Inbound does not: not to the private address, not to the public one.
	if err := echo(n.CloudNS, kubelet); err == nil {
		t.Errorf("the cloud dialled the edge kubelet at %s directly", kubelet)
	}
	if err := echo(n.CloudNS, net.JoinHostPort(e.PublicIP.String(), "10250")); err == nil {
		t.Errorf("the cloud reached the edge kubelet through the NAT's public address %s", e.PublicIP)
	}
	// Not even when the cloud knows a route to the private subnet: the NAT
	// lets in only what belongs to connections the edge opened.
	if err := run(ctx, "ip", "-n", n.CloudNS, "route", "add", e.IP.String()+"/32", "via", e.PublicIP.String()); err != nil {
		t.Fatal(err)
	}
	if err := echo(n.CloudNS, kubelet); err == nil {
		t.Errorf("the NAT forwarded a new connection from the cloud to the edge kubelet at %s", kubelet)
	}
	if err := echo(e.NS, cloud); err != nil {
		t.Errorf("after the route was added, the edge host cannot reach the cloud: %v", err)
	}

	// Cutting the NAT's uplink cuts the edge host off; restoring brings it back.
	if err := e.Cut(ctx); err != nil {
		t.Fatal(err)
	}
	if err := echo(e.NS, cloud); err == nil {
		t.Error("the edge host reached the cloud with its NAT's uplink cut")
	}
	if err := e.Restore(ctx); err != nil {
		t.Fatal(err)
	}
	if err := Poll(ctx, 200*time.Millisecond, func(context.Context) (bool, error) { return echo(e.NS, cloud) == nil, nil }); err != nil {
		t.Errorf("the edge host did not reach the cloud again after the uplink came back: %v", err)
	}
}

type dialError struct{ addr, out string }

func (e *dialError) Error() string { return "dial " + e.addr + ": " + e.out }
