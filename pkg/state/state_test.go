package state

import (
	"context"
	"reflect"
	"testing"

	"k8s.io/client-go/kubernetes/fake"
)

func obj(kind, name string, how How, uid string) Object {
	return Object{APIVersion: "v1", Kind: kind, Name: name, How: how, UID: typesUID(uid)}
}

func TestMergeKeepsCreatedAndLeftovers(t *testing.T) {
	prev := &Ownership{Objects: []Object{
		obj("ConfigMap", "a", Created, "u-a"),
		obj("ConfigMap", "old", Created, "u-old"), // no longer planned
		obj("ConfigMap", "b", Adopted, "u-b"),
	}}
	cur := []Object{
		obj("ConfigMap", "a", Adopted, ""), // found existing because run 1 made it
		obj("ConfigMap", "b", Adopted, "u-b"),
		obj("ConfigMap", "c", Created, "u-c"),
	}
	got := Merge(prev, cur)
	want := Ownership{Objects: []Object{
		obj("ConfigMap", "a", Created, "u-a"),
		obj("ConfigMap", "b", Adopted, "u-b"),
		obj("ConfigMap", "c", Created, "u-c"),
		obj("ConfigMap", "old", Created, "u-old"),
	}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Merge:\n got %+v\nwant %+v", got, want)
	}
	if again := Merge(&got, cur); !reflect.DeepEqual(again, want) {
		t.Fatalf("Merge is not stable:\n got %+v\nwant %+v", again, want)
	}
	if c := got.Created(); len(c) != 3 || c[0].Name != "a" || c[2].Name != "old" {
		t.Fatalf("Created() = %+v", c)
	}
}

func TestSaveSkipsUnchangedRecord(t *testing.T) {
	ctx := context.Background()
	c := fake.NewClientset()
	r := &Record{Config: Config{MasterPublicAddr: "203.0.113.1:6443"},
		Ownership: Ownership{Objects: []Object{obj("Namespace", "edge-system", Created, "u1")}}}
	cm, err := r.ConfigMap()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.CoreV1().ConfigMaps(Namespace).Create(ctx, cm, metav1CreateOptions()); err != nil {
		t.Fatal(err)
	}
	got, err := Get(ctx, c)
	if err != nil || got == nil {
		t.Fatalf("Get: %v, %v", got, err)
	}
	if !reflect.DeepEqual(got.Ownership, r.Ownership) || got.Config != r.Config {
		t.Fatalf("round trip: got %+v", got)
	}
	c.ClearActions()
	if err := Save(ctx, c, got); err != nil {
		t.Fatal(err)
	}
	if n := len(c.Actions()); n != 0 {
		t.Fatalf("Save of an unchanged record sent %d requests: %v", n, c.Actions())
	}
	if !got.Unchanged() {
		t.Fatal("Unchanged() = false for a record just read")
	}
	got.Ownership.Objects = append(got.Ownership.Objects, obj("ConfigMap", "x", Adopted, "u2"))
	if got.Unchanged() {
		t.Fatal("Unchanged() = true after a change")
	}
}

func TestGetMissingAndBad(t *testing.T) {
	ctx := context.Background()
	if r, err := Get(ctx, fake.NewClientset()); r != nil || err != nil {
		t.Fatalf("Get with no record = %v, %v; want nil, nil", r, err)
	}
	r := &Record{}
	cm, _ := r.ConfigMap()
	cm.Data[OwnershipKey] = "objects: [ {bad"
	if _, err := FromConfigMap(cm); err == nil {
		t.Fatal("a malformed ownership key decoded without error")
	}
}

func TestPendingIsDeletableAndSettledByTheNextRun(t *testing.T) {
	prev := &Ownership{Objects: []Object{obj("ConfigMap", "p", Pending, "")}}
	if c := prev.Created(); len(c) != 1 {
		t.Fatalf("a pending object is not for detach to consider: %+v", c)
	}
	got := Merge(prev, []Object{obj("ConfigMap", "p", Created, "u-p")})
	if got.Objects[0].How != Created || got.Objects[0].UID != "u-p" {
		t.Fatalf("the next run did not settle the pending entry: %+v", got)
	}
}
