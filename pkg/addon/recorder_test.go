package addon

import (
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/edgeadm/edgeadm/pkg/state"
)

func entry(name string, how state.How) state.Object {
	return state.Object{APIVersion: "v1", Kind: "ConfigMap", Namespace: "ns", Name: name, UID: types.UID("uid-" + name), How: how}
}

// A run that finds everything as the previous record says must not write
// the record at all, whatever order its objects finish in.
func TestRecorderUnchangedRunWritesNothing(t *testing.T) {
	prevOwn := state.Ownership{Objects: []state.Object{entry("a", state.Created), entry("b", state.Adopted), entry("c", state.Created)}}
	seed := &state.Record{Config: state.Config{MasterPublicAddr: "203.0.113.1:6443"}, Ownership: prevOwn}
	cm, err := seed.ConfigMap()
	if err != nil {
		t.Fatal(err)
	}
	client := fake.NewClientset(cm)
	prev, err := state.Get(context.Background(), client)
	if err != nil {
		t.Fatal(err)
	}
	client.ClearActions()
	var refs []state.Ref
	for _, o := range prevOwn.Objects {
		refs = append(refs, o.Ref())
	}
	r := newRecorder(context.Background(), client, prev, seed.Config, refs, false)
	for _, i := range []int{2, 0, 1} { // finish out of order
		if err := r.done(i, prevOwn.Objects[i]); err != nil {
			t.Fatal(err)
		}
	}
	final, err := r.finish()
	if err != nil {
		t.Fatal(err)
	}
	if n := len(client.Actions()); n != 0 {
		t.Fatalf("an unchanged run sent %d requests: %v", n, client.Actions())
	}
	if len(final.Ownership.Objects) != 3 || final.Ownership.Objects[0].Name != "a" || final.Ownership.Objects[2].Name != "c" {
		t.Fatalf("final ownership = %+v", final.Ownership)
	}
}

// A first run records what it made as it goes, ending in plan order.
func TestRecorderFirstRunRecordsEveryObject(t *testing.T) {
	client := fake.NewClientset()
	objs := []state.Object{entry("a", state.Created), entry("b", state.Adopted)}
	refs := []state.Ref{objs[0].Ref(), objs[1].Ref()}
	r := newRecorder(context.Background(), client, nil, state.Config{}, refs, false)
	_ = r.done(1, objs[1])
	_ = r.done(0, objs[0])
	if _, err := r.finish(); err != nil {
		t.Fatal(err)
	}
	cm, err := client.Tracker().Get(corev1.SchemeGroupVersion.WithResource("configmaps"), state.Namespace, state.Name)
	if err != nil {
		t.Fatalf("no record written: %v", err)
	}
	rec, err := state.FromConfigMap(cm.(*corev1.ConfigMap))
	if err != nil {
		t.Fatal(err)
	}
	if len(rec.Ownership.Objects) != 2 || rec.Ownership.Objects[0].Name != "a" || rec.Ownership.Objects[1].How != state.Adopted {
		t.Fatalf("recorded %+v", rec.Ownership)
	}
}
