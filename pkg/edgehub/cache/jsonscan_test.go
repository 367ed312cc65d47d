package cache

import (
	"slices"
	"testing"
)

func TestScanExtractsWhatThePlanNames(t *testing.T) {
	plan := newScanPlan([][]string{{"spec", "nodeName"}, {"spec", "hostNetwork"}, {"status", "replicas"}, {"spec", "gone"}, {"type"}, {"spec", "obj"}})
	doc := `{
	  "kind": "Pod", "apiVersion": "v1",
	  "metadata": {"name": "p\u00e9", "namespace": "a", "resourceVersion": "42",
	    "annotations": {"x": "{\"name\":\"fake\"}"},
	    "labels": {"app": "web", "esc\"aped": "v\\1", "n": "1"}},
	  "spec": {"containers": [{"name": "c", "args": ["}", "]", "\""]}], "nodeName": "n1", "hostNetwork": true, "obj": {"a": 1}, "gone": null},
	  "status": {"replicas": -3.5e2},
	  "type": "kubernetes.io/tls"
	}`
	res, err := scan([]byte(doc), plan)
	if err != nil {
		t.Fatal(err)
	}
	want := map[int]string{
		slotName: "pé", slotNamespace: "a", slotResourceVersion: "42", slotKind: "Pod", slotAPIVersion: "v1",
		plan.slotOf([]string{"spec", "nodeName"}):    "n1",
		plan.slotOf([]string{"spec", "hostNetwork"}): "true",
		plan.slotOf([]string{"status", "replicas"}):  "-3.5e2",
		plan.slotOf([]string{"spec", "gone"}):        "",
		plan.slotOf([]string{"type"}):                "kubernetes.io/tls",
		plan.slotOf([]string{"spec", "obj"}):         "",
	}
	for slot, v := range want {
		if res.values[slot] != v {
			t.Errorf("slot %d = %q, want %q", slot, res.values[slot], v)
		}
	}
	if want := (labelPairs{"app", "web", `esc"aped`, `v\1`, "n", "1"}); !slices.Equal(res.labels, want) {
		t.Errorf("labels = %q, want %q", res.labels, want)
	}
}

func TestScanRejectsMalformedJSON(t *testing.T) {
	plan := newScanPlan([][]string{{"spec", "nodeName"}})
	for _, doc := range []string{
		``, `[]`, `"x"`, `{`, `{"metadata":`, `{"metadata":{"name":"x"`, `{"metadata":{"name":"x}}`,
		`{"spec":{"a":[1,2}`, `{"a" 1}`, `{"a":1 "b":2}`, `{1:2}`,
	} {
		if _, err := scan([]byte(doc), plan); err == nil {
			t.Errorf("scan accepted %q", doc)
		}
	}
}

func BenchmarkScanPod(b *testing.B) {
	doc := mustJSON(b, realisticPod(1, "a", "n1", "web", "Running"))
	plan := newScanPlan([][]string{{"spec", "nodeName"}, {"status", "phase"}})
	b.SetBytes(int64(len(doc)))
	for b.Loop() {
		if _, err := scan(doc, plan); err != nil {
			b.Fatal(err)
		}
	}
}
