package inventory

import (
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

func TestDiff(t *testing.T) {
	a := Inventory{"configmaps ns/a": `{"x":1}`, "configmaps ns/b": `{"x":1}`}
	b := Inventory{"configmaps ns/a": `{"x":2}`, "configmaps ns/c": `{}`}
	d := Diff(a, b)
	if len(d) != 3 || !strings.HasPrefix(d[0], "+ configmaps ns/c") || !strings.HasPrefix(d[1], "- configmaps ns/b") || !strings.HasPrefix(d[2], "~ configmaps ns/a") {
		t.Fatalf("Diff = %q", d)
	}
	if len(Diff(a, a)) != 0 {
		t.Fatal("an inventory differs from itself")
	}
}

func TestContentNormalization(t *testing.T) {
	u := &unstructured.Unstructured{Object: map[string]any{
		"metadata": map[string]any{"name": "edge-controller-5f9b-abcde", "generateName": "edge-controller-5f9b-",
			"uid": "u", "resourceVersion": "7", "managedFields": []any{}},
		"status": map[string]any{"phase": "Pending"},
	}}
	exact := u.DeepCopy()
	normalize(Exact, exact)
	if exact.GetUID() != "u" {
		t.Fatal("Exact dropped the uid")
	}
	normalize(Content, u)
	if u.GetName() != "edge-controller-5f9b-*" || u.GetUID() != "" || u.GetResourceVersion() != "" || u.Object["status"] != nil {
		t.Fatalf("Content kept volatile fields: %v", u.Object)
	}
}
