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
		{"at grace", testOpts.GracePeriod, PhaseConnected},
		{"past grace", testOpts.GracePeriod + time.Millisecond, PhaseCovering},
		{"at max", testOpts.MaxDisconnect, PhaseCovering},
		{"past max", testOpts.MaxDisconnect + time.Millisecond, PhaseExpired},
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
