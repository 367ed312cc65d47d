package addon

import (
	"context"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	dynamicfake "k8s.io/client-go/dynamic/fake"
)

var crdGVR = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}

func crd(established bool) *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
		"metadata": map[string]any{"name": "edgenodes.edge.superedge.io"},
	}}
	if established {
		_ = unstructured.SetNestedSlice(u.Object, []any{map[string]any{"type": "Established", "status": "True"}}, "status", "conditions")
	}
	return u
}

func newDynamic(objs ...runtime.Object) *dynamicfake.FakeDynamicClient {
	return dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(),
		map[schema.GroupVersionResource]string{crdGVR: "CustomResourceDefinitionList"}, objs...)
}

func TestWaitEstablishedWatchesUntilEstablished(t *testing.T) {
	dyn := newDynamic(crd(false))
	ri := dyn.Resource(crdGVR)
	done := make(chan error, 1)
	go func() {
		done <- WaitEstablished(context.Background(), ri, "edgenodes.edge.superedge.io", 10*time.Second)
	}()
	// Establish it once the waiter watches (the fake delivers only to
	// watchers that exist when the update happens).
	bound := time.After(10 * time.Second)
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for len(dyn.Actions()) < 2 { // list, then watch
		select {
		case err := <-done:
			t.Fatalf("returned before the CRD was Established: %v", err)
		case <-bound:
			t.Fatal("WaitEstablished did not list and watch within 10s")
		case <-tick.C:
		}
	}
	if _, err := ri.Update(context.Background(), crd(true), metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestWaitEstablishedIsBounded(t *testing.T) {
	ri := newDynamic(crd(false)).Resource(crdGVR)
	err := WaitEstablished(context.Background(), ri, "edgenodes.edge.superedge.io", 50*time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "not Established") {
		t.Fatalf("err = %v", err)
	}
}
