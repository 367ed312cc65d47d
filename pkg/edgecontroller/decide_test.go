package edgecontroller

import (
	"errors"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

var errConflict = apierrors.NewConflict(schema.GroupResource{Group: "coordination.k8s.io", Resource: "leases"}, "e1", errors.New("changed"))

func TestOptionsValidate(t *testing.T) {
	if err := DefaultOptions().Validate(); err != nil {
		t.Errorf("defaults: %v", err)
	}
	for _, o := range []Options{
		{GracePeriod: 0, MaxDisconnect: time.Hour, LeaseRenewInterval: time.Second, StatusUpdateInterval: time.Second},
		// No room for the status write before the grace period ends.
		{GracePeriod: 2 * StatusWriteAllowance, MaxDisconnect: time.Hour, LeaseRenewInterval: time.Second, StatusUpdateInterval: time.Second},
		{GracePeriod: time.Minute, MaxDisconnect: time.Second, LeaseRenewInterval: time.Second, StatusUpdateInterval: time.Second},
		{GracePeriod: time.Minute, MaxDisconnect: time.Hour, LeaseRenewInterval: time.Minute, StatusUpdateInterval: time.Second},
		{GracePeriod: time.Minute, MaxDisconnect: time.Hour, LeaseRenewInterval: time.Second},
	} {
		if err := o.Validate(); err == nil {
			t.Errorf("%+v accepted", o)
		}
	}
}

func TestDecidePhases(t *testing.T) {
	n := edgeNode("e1", true)
	for _, tc := range []struct {
		name   string
		silent time.Duration
		want   Phase
	}{
		{"fresh", time.Second, PhaseConnected},
		{"just before the write allowance", testOpts.GracePeriod - StatusWriteAllowance - time.Microsecond, PhaseConnected},
		// Silent from the write allowance on, so the EdgeNode's NotReady is
		// written before the grace period is over.
		{"at the write allowance", testOpts.GracePeriod - StatusWriteAllowance, PhaseCovering},
		{"at grace", testOpts.GracePeriod, PhaseCovering},
		{"just before max", testOpts.MaxDisconnect - time.Microsecond, PhaseCovering},
		{"at max", testOpts.MaxDisconnect, PhaseExpired},
	} {
		d := Decide(Observation{Now: t0.Add(tc.silent), Node: n, Lease: kubeletLease("e1", t0)}, testOpts)
		if d.Phase != tc.want {
			t.Errorf("%s: phase %s, want %s", tc.name, d.Phase, tc.want)
		}
		if covering := d.Phase == PhaseCovering; d.RenewLease != covering || d.Annotate != covering {
			t.Errorf("%s: %+v", tc.name, d)
		}
	}
}

// The Connected phase looks again at the exact moment the Lease goes silent,
// and the Covering phase at the exact moment max-disconnect passes: no margin
// that would push NotReady past the grace period.
func TestDecideRequeuesAtTheDeadline(t *testing.T) {
	n := edgeNode("e1", true)
	for _, silent := range []time.Duration{0, time.Second, 17*time.Second + 345*time.Microsecond, testOpts.GracePeriod - StatusWriteAllowance - time.Millisecond} {
		d := Decide(Observation{Now: t0.Add(silent), Node: n, Lease: kubeletLease("e1", t0)}, testOpts)
		if want := testOpts.GracePeriod - StatusWriteAllowance - silent; d.Phase != PhaseConnected || d.RequeueAfter != want {
			t.Errorf("silent %s: %s, requeue after %s, want Connected and %s", silent, d.Phase, d.RequeueAfter, want)
		}
		next := Decide(Observation{Now: t0.Add(silent + d.RequeueAfter), Node: n, Lease: kubeletLease("e1", t0)}, testOpts)
		if next.Phase != PhaseCovering {
			t.Errorf("silent %s: at the requeue the phase is %s, want Covering", silent, next.Phase)
		}
	}
	silent := testOpts.MaxDisconnect - 3*time.Second
	d := Decide(Observation{Now: t0.Add(silent), Node: n, Lease: kubeletLease("e1", t0)}, testOpts)
	if d.Phase != PhaseCovering || d.RequeueAfter != 3*time.Second {
		t.Errorf("3s before max-disconnect: %s, requeue after %s", d.Phase, d.RequeueAfter)
	}
}
