package testenv

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to make network namespaces")
	}
}

func TestNetworkIsIsolatedAndTornDownCompletely(t *testing.T) {
	requireRoot(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	n, err := NewNetwork(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Teardown(context.Background()) })
	edge, err := n.AddEdge(ctx, "edge1")
	if err != nil {
		t.Fatal(err)
	}

	for _, ns := range []string{n.CloudNS, edge.NS} {
		routes, err := output(ctx, "ip", "-n", ns, "route", "show", "table", "all")
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(routes, "default") {
			t.Errorf("namespace %s has a default route; test traffic could leave the machine:\n%s", ns, routes)
		}
	}

	// A server in the cloud namespace answers the host and the edge host.
	addr := net.JoinHostPort(n.CloudIP.String(), "7777")
	lis := exec.Command("nsenter", "--net=/run/netns/"+n.CloudNS, "--", os.Args[0])
	lis.Env = append(os.Environ(), "EDGEADM_TESTENV_HELPER=listen:"+addr)
	stdout, _ := lis.StdoutPipe()
	if err := lis.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = lis.Process.Kill(); _ = lis.Wait() })
	buf := make([]byte, 10)
	if _, err := stdout.Read(buf); err != nil {
		t.Fatalf("listener in cloud namespace did not start: %v", err)
	}

	dialFromEdge := func() error {
		c := exec.CommandContext(ctx, "nsenter", "--net=/run/netns/"+edge.NS, "--", os.Args[0])
		c.Env = append(os.Environ(), "EDGEADM_TESTENV_HELPER=dial:"+addr)
		out, err := c.CombinedOutput()
		if err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		return nil
	}
	if c, err := net.DialTimeout("tcp", addr, 3*time.Second); err != nil {
		t.Errorf("host cannot reach the cloud namespace at %s: %v", addr, err)
	} else {
		c.Close()
	}
	if err := dialFromEdge(); err != nil {
		t.Errorf("edge host cannot reach the cloud: %v", err)
	}
	if err := edge.Cut(ctx); err != nil {
		t.Fatal(err)
	}
	if err := dialFromEdge(); err == nil {
		t.Errorf("edge host still reaches the cloud after the link was cut")
	}
	if err := edge.Restore(ctx); err != nil {
		t.Fatal(err)
	}
	if err := Poll(ctx, 100*time.Millisecond, func(context.Context) (bool, error) { return dialFromEdge() == nil, nil }); err != nil {
		t.Errorf("edge host does not reach the cloud after the link was restored: %v", err)
	}
	if err := edge.Degrade(ctx, 50*time.Millisecond, 0); err != nil {
		if errors.Is(err, ErrNoNetem) {
			t.Logf("netem not available: %v", err)
		} else {
			t.Errorf("degrade: %v", err)
		}
	} else if err := edge.Heal(ctx); err != nil {
		t.Errorf("heal: %v", err)
	}

	// With the host end down, the safety route must answer for the subnet.
	route, err := output(ctx, "ip", "route", "show", n.Subnet.String(), "table", "main")
	if err != nil || !strings.Contains(route, "unreachable") {
		t.Errorf("host has no unreachable safety route for %s: %q %v", n.Subnet, route, err)
	}

	_ = lis.Process.Kill()
	_ = lis.Wait()
	if err := n.Teardown(ctx); err != nil {
		t.Fatal(err)
	}
	if left := networkLeftovers(ctx, n); len(left) > 0 {
		t.Errorf("teardown left: %v", left)
	}
}
