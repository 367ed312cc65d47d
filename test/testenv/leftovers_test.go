package testenv

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"
)

// The leftover check must see what it is meant to see, or a clean result
// proves nothing.
func TestLeftoversSeesWhatIsLeft(t *testing.T) {
	if os.Geteuid() != 0 {
		SkipOrFail(t, "needs root to make network namespaces")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	n, err := NewNetwork(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Teardown(context.Background()) })
	if _, err := n.AddEdge(ctx, "edge1"); err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "edgeadm-leftovers-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	p, err := StartProcess("sleeper", dir, InNetns(n.CloudNS, "sleep", "60"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Stop(time.Second) })
	cp := &ControlPlane{Net: n, Dir: dir, procs: []*Process{p}}

	left := strings.Join(Leftovers(ctx, n, cp), "\n")
	for _, want := range []string{
		"process sleeper", "folder " + dir,
		"netns " + n.CloudNS, "netns " + n.links["edge1"].NS, "link " + n.hostLink,
		"route unreachable " + n.Subnet.String(), "address " + n.HostIP.String(),
	} {
		if !strings.Contains(left, want) {
			t.Errorf("leftovers lack %q:\n%s", want, left)
		}
	}

	if err := p.Stop(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if err := n.Teardown(ctx); err != nil {
		t.Fatal(err)
	}
	if left := Leftovers(ctx, n, cp); len(left) > 0 {
		t.Errorf("after teardown: %v", left)
	}
}
