package testenv

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sort"
	"strings"
	"testing"
	"time"
)

// E2EEnv is the environment variable CI sets to "1": with it, a missing
// prerequisite (root, tools, the built cache) fails a test instead of skipping
// it, so nothing passes by silently not running.
const E2EEnv = "EDGEADM_E2E"

// clusterStartTimeout bounds making the network and starting the control plane.
const clusterStartTimeout = 3 * time.Minute

// teardownTimeout bounds stopping the control plane and removing the network.
const teardownTimeout = 2 * time.Minute

// Cluster is a control plane in its own test network, made for one test and
// torn down when it ends.
type Cluster struct {
	*ControlPlane
	Paths Paths
	// Master is the kubeadm master of a NewKubeadmCluster (its control
	// plane runs as static pods there), else nil.
	Master *EdgeHost

	tornDown bool
}

// NewCluster makes a Network and starts a ControlPlane in it, and registers a
// cleanup that tears both down and reports anything left behind with t.Errorf.
// Without root, the tools or the built cache it skips the test, or fails it
// when EDGEADM_E2E=1.
func NewCluster(t testing.TB, opts ControlPlaneOptions) *Cluster {
	t.Helper()
	paths := RequireEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), clusterStartTimeout)
	defer cancel()
	n, err := NewNetwork(ctx)
	if err != nil {
		t.Fatalf("make test network: %v", err)
	}
	c := &Cluster{ControlPlane: &ControlPlane{Net: n}, Paths: paths}
	t.Cleanup(func() {
		tctx, cancel := context.WithTimeout(context.Background(), teardownTimeout)
		defer cancel()
		if t.Failed() && !c.tornDown {
			// The logs go with the folder: show their ends while they exist.
			for _, p := range c.procs {
				t.Logf("%s", strings.TrimPrefix(logTail(p), "\n"))
			}
		}
		if err := c.Teardown(tctx); err != nil {
			t.Errorf("teardown: %v", err)
		}
		if left := c.Leftovers(tctx); len(left) > 0 {
			t.Errorf("teardown left behind:\n  %s", strings.Join(left, "\n  "))
		}
	})
	cp, err := StartControlPlane(ctx, n, paths, opts)
	if err != nil {
		t.Fatalf("start control plane: %v", err)
	}
	c.ControlPlane = cp
	t.Logf("control plane %q in %s ready in %s (%s)", cp.Options.Flavour, n.CloudNS,
		cp.ReadyAfter["total"].Round(time.Millisecond), formatDurations(cp.ReadyAfter))
	return c
}

// Teardown stops the control plane and removes the network. It runs once; the
// cleanup NewCluster registered calls it too, so a test may call it early to
// check what teardown leaves.
func (c *Cluster) Teardown(ctx context.Context) error {
	if c.tornDown {
		return nil
	}
	c.tornDown = true
	var errs []error
	// Before the control plane started this is an empty one: Stop does nothing.
	errs = append(errs, c.ControlPlane.Stop(ctx))
	if c.Master != nil {
		c.Master.stopPods(ctx)
		errs = append(errs, c.Master.Teardown(ctx))
	}
	errs = append(errs, c.Net.Teardown(ctx))
	return errors.Join(errs...)
}

// Leftovers lists what of the cluster still exists (see Leftovers).
func (c *Cluster) Leftovers(ctx context.Context) []string {
	left := Leftovers(ctx, c.Net, c.ControlPlane)
	if c.Master != nil {
		left = append(left, c.Master.Leftovers()...)
	}
	return left
}

// RequireEnv returns the cache paths when the machine can run real clusters:
// root, nsenter and ip, and the cache built by scripts/test-env.sh. Otherwise it
// skips the test, or fails it when EDGEADM_E2E=1.
func RequireEnv(t testing.TB) Paths {
	t.Helper()
	if os.Geteuid() != 0 {
		SkipOrFail(t, "needs root to make network namespaces")
	}
	for _, tool := range []string{"ip", "nsenter"} {
		if _, err := exec.LookPath(tool); err != nil {
			SkipOrFail(t, fmt.Sprintf("needs %s: %v", tool, err))
		}
	}
	paths, err := LocatePaths()
	if err != nil {
		SkipOrFail(t, err.Error())
	}
	return paths
}

// SkipOrFail skips the test with reason, or fails it when EDGEADM_E2E=1.
func SkipOrFail(t testing.TB, reason string) {
	t.Helper()
	if os.Getenv(E2EEnv) == "1" {
		t.Fatalf("%s (%s=1, so this is a failure, not a skip)", reason, E2EEnv)
	}
	t.Skip(reason)
}

func formatDurations(d map[string]time.Duration) string {
	type kv struct {
		k string
		v time.Duration
	}
	var items []kv
	for k, v := range d {
		if k != "total" {
			items = append(items, kv{k, v})
		}
	}
	sort.Slice(items, func(i, j int) bool { return items[i].v < items[j].v })
	parts := make([]string, len(items))
	for i, it := range items {
		parts[i] = fmt.Sprintf("%s at %s", it.k, it.v.Round(time.Millisecond))
	}
	return strings.Join(parts, ", ")
}
