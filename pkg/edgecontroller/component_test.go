package edgecontroller

import (
	"context"
	"errors"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/klog/v2"
	clocktesting "k8s.io/utils/clock/testing"

	edgev1 "github.com/edgeadm/edgeadm/pkg/apis/edge/v1alpha1"
)

func TestComponentStates(t *testing.T) {
	w := newWorld(t, edgeNode("e1", true), kubeletLease("e1", t0), edgeNode("cloud", false))
	c, err := NewComponent(w.kube, w.dyn, clocktesting.NewFakeClock(t0), testOpts, 2, klog.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Stop(context.Background()); !errors.Is(err, ErrTransition) {
		t.Errorf("Stop in New: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.Start(ctx, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if c.State() != StateRunning {
		t.Errorf("state %s", c.State())
	}
	if err := c.Start(ctx, time.Second); !errors.Is(err, ErrTransition) {
		t.Errorf("second Start: %v", err)
	}
	// The informers deliver the edge node; its EdgeNode appears, the
	// non-edge node's never does.
	if err := wait.PollUntilContextTimeout(ctx, 10*time.Millisecond, 10*time.Second, true, func(ctx context.Context) (bool, error) {
		_, err := w.dyn.Resource(edgev1.Resource).Get(ctx, "e1", metav1.GetOptions{})
		return err == nil, nil
	}); err != nil {
		t.Fatalf("no EdgeNode for e1: %v", err)
	}
	if err := c.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if c.State() != StateStopped {
		t.Errorf("state %s", c.State())
	}
	if err := c.Stop(ctx); !errors.Is(err, ErrTransition) {
		t.Errorf("second Stop: %v", err)
	}
	if _, err := w.dyn.Resource(edgev1.Resource).Get(ctx, "cloud", metav1.GetOptions{}); err == nil {
		t.Error("EdgeNode for a non-edge node")
	}
}

func TestNewComponentRejectsBadOptions(t *testing.T) {
	w := newWorld(t)
	if _, err := NewComponent(w.kube, w.dyn, clocktesting.NewFakeClock(t0), Options{}, 1, klog.Background()); err == nil {
		t.Error("zero options accepted")
	}
}
