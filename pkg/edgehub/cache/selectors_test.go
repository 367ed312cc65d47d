package cache

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// apiserverPodFields is the apiserver's field set of a pod, as
// k8s.io/kubernetes pkg/registry/core/pod/strategy.go ToSelectableFields
// and generic.AddObjectMetaFieldsSet build it: the oracle the store's
// answers are checked against.
func apiserverPodFields(p *corev1.Pod) fields.Set {
	podIP := ""
	if len(p.Status.PodIPs) > 0 {
		podIP = p.Status.PodIPs[0].IP
	}
	return fields.Set{
		"metadata.name":            p.Name,
		"metadata.namespace":       p.Namespace,
		"spec.nodeName":            p.Spec.NodeName,
		"spec.restartPolicy":       string(p.Spec.RestartPolicy),
		"spec.schedulerName":       p.Spec.SchedulerName,
		"spec.serviceAccountName":  p.Spec.ServiceAccountName,
		"spec.hostNetwork":         strconv.FormatBool(p.Spec.HostNetwork),
		"status.phase":             string(p.Status.Phase),
		"status.podIP":             podIP,
		"status.nominatedNodeName": p.Status.NominatedNodeName,
	}
}

// selectorPods is a small fleet covering the cases selectors distinguish:
// labels present, absent and differing; scheduled and unscheduled; host
// network set and unset; two namespaces.
func selectorPods() []*corev1.Pod {
	mk := func(i int, ns, name, node string, phase corev1.PodPhase, lbls map[string]string) *corev1.Pod {
		p := realisticPod(i, ns, node, "x", phase)
		p.Name = name
		p.Labels = lbls
		return p
	}
	pods := []*corev1.Pod{
		mk(1, "a", "web-1", "n1", corev1.PodRunning, map[string]string{"app": "web", "tier": "frontend"}),
		mk(2, "a", "web-2", "n2", corev1.PodRunning, map[string]string{"app": "web", "tier": "frontend"}),
		mk(3, "a", "db-1", "n1", corev1.PodPending, map[string]string{"app": "db", "tier": "backend"}),
		mk(4, "a", "batch-1", "", corev1.PodPending, map[string]string{"app": "batch"}),
		mk(5, "a", "bare", "n1", corev1.PodSucceeded, nil),
		mk(6, "b", "web-1", "n1", corev1.PodRunning, map[string]string{"app": "web", "tier": "frontend", "canary": "true"}),
		mk(7, "b", "cache-1", "n2", corev1.PodFailed, map[string]string{"app": "cache", "tier": "backend"}),
	}
	pods[4].Spec.HostNetwork = true
	return pods
}

func names(items [][]byte) []string {
	var out []string
	for _, it := range items {
		var m struct {
			Metadata struct{ Namespace, Name string }
		}
		if err := json.Unmarshal(it, &m); err != nil {
			panic(err)
		}
		out = append(out, m.Metadata.Namespace+"/"+m.Metadata.Name)
	}
	return out
}

func TestListSelectorsMatchTheAPIServer(t *testing.T) {
	s := openTemp(t)
	pods := selectorPods()
	var items [][]byte
	for _, p := range pods {
		items = append(items, podListItem(t, p))
	}
	all := Scope{GVR: podsGVR}
	if err := s.ReplaceList("node", all, "PodList", "v1", "500", items); err != nil {
		t.Fatal(err)
	}

	cases := []struct {
		ns, label, field string
		want             []string
	}{
		{"", "", "", []string{"a/bare", "a/batch-1", "a/db-1", "a/web-1", "a/web-2", "b/cache-1", "b/web-1"}},
		{"a", "", "", []string{"a/bare", "a/batch-1", "a/db-1", "a/web-1", "a/web-2"}},
		{"c", "", "", nil},
		// Labels: equality, inequality (a pod without the label matches), set-based, existence.
		{"", "app=web", "", []string{"a/web-1", "a/web-2", "b/web-1"}},
		{"", "app==web", "", []string{"a/web-1", "a/web-2", "b/web-1"}},
		{"", "app!=web", "", []string{"a/bare", "a/batch-1", "a/db-1", "b/cache-1"}},
		{"", "app in (db,cache)", "", []string{"a/db-1", "b/cache-1"}},
		{"", "app notin (web,db)", "", []string{"a/bare", "a/batch-1", "b/cache-1"}},
		{"", "tier", "", []string{"a/db-1", "a/web-1", "a/web-2", "b/cache-1", "b/web-1"}},
		{"", "!tier", "", []string{"a/bare", "a/batch-1"}},
		{"", "app=web,!canary", "", []string{"a/web-1", "a/web-2"}},
		{"b", "tier=backend", "", []string{"b/cache-1"}},
		{"", "app=nothing", "", nil},
		// Fields: dotted paths, several requirements, inequality, missing = "".
		{"", "", "spec.nodeName=n1", []string{"a/bare", "a/db-1", "a/web-1", "b/web-1"}},
		{"", "", "spec.nodeName==n1", []string{"a/bare", "a/db-1", "a/web-1", "b/web-1"}},
		{"", "", "spec.nodeName=", []string{"a/batch-1"}},
		{"", "", "spec.nodeName!=", []string{"a/bare", "a/db-1", "a/web-1", "a/web-2", "b/cache-1", "b/web-1"}},
		{"", "", "spec.nodeName=n1,status.phase=Running", []string{"a/web-1", "b/web-1"}},
		{"", "", "status.phase!=Running,status.phase!=Pending", []string{"a/bare", "b/cache-1"}},
		{"", "", "metadata.name=web-1", []string{"a/web-1", "b/web-1"}},
		{"", "", "metadata.namespace=b", []string{"b/cache-1", "b/web-1"}},
		{"a", "", "metadata.namespace=b", nil},
		{"", "", "spec.hostNetwork=false", []string{"a/batch-1", "a/db-1", "a/web-1", "a/web-2", "b/cache-1", "b/web-1"}},
		{"", "", "spec.hostNetwork=true", []string{"a/bare"}},
		{"", "", "status.podIP=" + pods[1].Status.PodIP, []string{"a/web-2"}},
		{"", "", "spec.restartPolicy=Always,spec.schedulerName=default-scheduler", []string{"a/bare", "a/batch-1", "a/db-1", "a/web-1", "a/web-2", "b/cache-1", "b/web-1"}},
		{"", "", "status.nominatedNodeName=", []string{"a/bare", "a/batch-1", "a/db-1", "a/web-1", "a/web-2", "b/cache-1", "b/web-1"}},
		// Both at once, in one namespace.
		{"a", "tier=frontend", "spec.nodeName!=n1", []string{"a/web-2"}},
	}
	for _, c := range cases {
		t.Run(fmt.Sprintf("ns=%s,l=%s,f=%s", c.ns, c.label, c.field), func(t *testing.T) {
			req := canonicalScope(t, podsGVR, c.ns, c.label, c.field)
			res, ok, err := s.List("node", req)
			if err != nil || !ok {
				t.Fatalf("List = ok %v, err %v; want a covered answer", ok, err)
			}
			got := names(res.Items)
			if !slices.Equal(got, c.want) {
				t.Errorf("store answered %v, want %v", got, c.want)
			}
			if oracle := apiserverAnswer(t, pods, req); !slices.Equal(got, oracle) {
				t.Errorf("store answered %v, the apiserver's own matching gives %v", got, oracle)
			}
			if res.Kind != "PodList" || res.APIVersion != "v1" || res.ResourceVersion != "500" {
				t.Errorf("list meta = %s %s %s, want PodList v1 500", res.Kind, res.APIVersion, res.ResourceVersion)
			}
		})
	}
}

// canonicalScope builds a request scope the way the server does.
func canonicalScope(t *testing.T, gvr schema.GroupVersionResource, ns, label, field string) Scope {
	t.Helper()
	ls, err := labels.Parse(label)
	if err != nil {
		t.Fatal(err)
	}
	fs, err := fields.ParseSelector(field)
	if err != nil {
		t.Fatal(err)
	}
	return Scope{GVR: gvr, Namespace: ns, LabelSelector: ls.String(), FieldSelector: fs.String()}
}

// apiserverAnswer filters pods as the apiserver's SelectionPredicate does.
func apiserverAnswer(t *testing.T, pods []*corev1.Pod, req Scope) []string {
	ls, _ := labels.Parse(req.LabelSelector)
	fs, _ := fields.ParseSelector(req.FieldSelector)
	var out []string
	for _, p := range pods {
		if req.Namespace != "" && p.Namespace != req.Namespace {
			continue
		}
		if ls.Matches(labels.Set(p.Labels)) && fs.Matches(apiserverPodFields(p)) {
			out = append(out, p.Namespace+"/"+p.Name)
		}
	}
	slices.Sort(out)
	return out
}

func TestListEventFieldSelectors(t *testing.T) {
	s := openTemp(t)
	gvr := schema.GroupVersionResource{Version: "v1", Resource: "events"}
	ev := func(name, involved, typ, component, reporting string) []byte {
		e := corev1.Event{
			ObjectMeta:          metav1.ObjectMeta{Name: name, Namespace: "a", ResourceVersion: "7"},
			InvolvedObject:      corev1.ObjectReference{Kind: "Pod", Namespace: "a", Name: involved},
			Type:                typ,
			Source:              corev1.EventSource{Component: component},
			ReportingController: reporting,
		}
		return mustJSON(t, e)
	}
	items := [][]byte{
		ev("e1", "web-1", "Warning", "kubelet", "kubelet"),
		ev("e2", "web-1", "Normal", "", "edge-controller"),
		ev("e3", "db-1", "Normal", "scheduler", ""),
	}
	if err := s.ReplaceList("node", Scope{GVR: gvr, Namespace: "a"}, "EventList", "v1", "9", items); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		field string
		want  []string
	}{
		{"involvedObject.name=web-1", []string{"a/e1", "a/e2"}},
		{"involvedObject.name=web-1,type=Warning", []string{"a/e1"}},
		{"involvedObject.kind=Pod,involvedObject.namespace=a,type!=Warning", []string{"a/e2", "a/e3"}},
		// "source" is source.component, or reportingComponent when that is empty.
		{"source=edge-controller", []string{"a/e2"}},
		{"source=scheduler", []string{"a/e3"}},
		{"reportingComponent=kubelet", []string{"a/e1"}},
		{"reason=", []string{"a/e1", "a/e2", "a/e3"}},
	} {
		res, ok, err := s.List("node", canonicalScope(t, gvr, "a", "", c.field))
		if err != nil || !ok {
			t.Fatalf("%s: ok %v err %v", c.field, ok, err)
		}
		if got := names(res.Items); !slices.Equal(got, c.want) {
			t.Errorf("%s: got %v, want %v", c.field, got, c.want)
		}
	}
}

func TestListNodeUnschedulableDefaultsToFalse(t *testing.T) {
	s := openTemp(t)
	gvr := schema.GroupVersionResource{Version: "v1", Resource: "nodes"}
	n1 := corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1"}}
	n2 := corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n2"}, Spec: corev1.NodeSpec{Unschedulable: true}}
	if err := s.ReplaceList("node", Scope{GVR: gvr}, "NodeList", "v1", "3", [][]byte{mustJSON(t, n1), mustJSON(t, n2)}); err != nil {
		t.Fatal(err)
	}
	for field, want := range map[string]string{"spec.unschedulable=false": "/n1", "spec.unschedulable=true": "/n2", "metadata.name=n2": "/n2"} {
		res, ok, err := s.List("node", canonicalScope(t, gvr, "", "", field))
		if err != nil || !ok {
			t.Fatalf("%s: ok %v err %v", field, ok, err)
		}
		if got := names(res.Items); !slices.Equal(got, []string{want}) {
			t.Errorf("%s: got %v, want [%s]", field, got, want)
		}
	}
}

// More distinct fields than a resource indexes are still answered right,
// from the JSON.
func TestListBeyondIndexedFields(t *testing.T) {
	s := openTemp(t)
	pods := selectorPods()
	var items [][]byte
	for _, p := range pods {
		items = append(items, podListItem(t, p))
	}
	if err := s.ReplaceList("node", Scope{GVR: podsGVR}, "PodList", "v1", "5", items); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < maxIndexedFields+4; i++ {
		field := fmt.Sprintf("spec.nothing%d=", i)
		if i%2 == 1 {
			field = fmt.Sprintf("spec.nothing%d=x", i)
		}
		res, ok, err := s.List("node", canonicalScope(t, podsGVR, "", "", field+",spec.nodeName=n2"))
		if err != nil || !ok {
			t.Fatalf("ok %v err %v", ok, err)
		}
		want := []string{"a/web-2", "b/cache-1"}
		if i%2 == 1 {
			want = nil
		}
		if got := names(res.Items); !slices.Equal(got, want) {
			t.Errorf("%s: got %v, want %v", field, got, want)
		}
	}
}

func TestListRejectsBadSelectors(t *testing.T) {
	s := openTemp(t)
	if _, _, err := s.List("node", Scope{GVR: podsGVR, LabelSelector: "a in (b"}); err == nil {
		t.Error("a malformed label selector was accepted")
	}
	if _, _, err := s.List("node", Scope{GVR: podsGVR, FieldSelector: "spec.nodeName"}); err == nil {
		t.Error("a malformed field selector was accepted")
	}
}

// A field path deeper than the scanner descends reads as unset and does
// not stop objects from being cached.
func TestAbsurdFieldPathDoesNotBreakCaching(t *testing.T) {
	s := openTemp(t)
	must(t, s.ReplaceList("node", Scope{GVR: podsGVR}, "PodList", "v1", "5", [][]byte{pod(t, "a", "p1", "n1", "1", nil)}))
	deep := "spec" + strings.Repeat(".x", maxScanDepth+5)
	res, ok, err := s.List("node", canonicalScope(t, podsGVR, "", "", deep+"="))
	if err != nil || !ok || len(res.Items) != 1 {
		t.Fatalf("deep field selector: ok %v err %v items %d, want the one pod", ok, err, len(res.Items))
	}
	must(t, s.Put("node", podsGVR, pod(t, "a", "p2", "n1", "2", nil)))
	must(t, s.ReplaceList("node", Scope{GVR: podsGVR, FieldSelector: deep + "="}, "PodList", "v1", "6", [][]byte{pod(t, "a", "p3", "n1", "3", nil)}))
}
