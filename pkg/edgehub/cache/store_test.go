package cache

import (
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

func openTemp(t testing.TB) *DiskStore {
	t.Helper()
	s, err := Open(t.TempDir()+"/cache", Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func pod(t testing.TB, ns, name, node, rv string, lbls map[string]string) []byte {
	p := realisticPod(1, ns, node, "x", corev1.PodRunning)
	p.Name, p.ResourceVersion, p.Labels = name, rv, lbls
	return mustJSON(t, p)
}

func mustList(t *testing.T, s Store, identity string, req Scope) ListResult {
	t.Helper()
	res, ok, err := s.List(identity, req)
	if err != nil || !ok {
		t.Fatalf("List(%s, %+v) = ok %v, err %v; want a covered answer", identity, req, ok, err)
	}
	return res
}

func TestCoveringRules(t *testing.T) {
	s := openTemp(t)
	web := map[string]string{"app": "web"}
	if err := s.ReplaceList("node", Scope{GVR: podsGVR, Namespace: "a"}, "PodList", "v1", "10", [][]byte{pod(t, "a", "p1", "n1", "9", web)}); err != nil {
		t.Fatal(err)
	}
	if err := s.ReplaceList("node", Scope{GVR: podsGVR, Namespace: "b", LabelSelector: "app=web"}, "PodList", "v1", "11", [][]byte{pod(t, "b", "p2", "n1", "9", web)}); err != nil {
		t.Fatal(err)
	}
	if err := s.ReplaceList("node", Scope{GVR: podsGVR, Namespace: "c", FieldSelector: "spec.nodeName=n1"}, "PodList", "v1", "12", nil); err != nil {
		t.Fatal(err)
	}
	cm := schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}
	for _, c := range []struct {
		name string
		req  Scope
		ok   bool
	}{
		{"the listed namespace", Scope{GVR: podsGVR, Namespace: "a"}, true},
		{"the listed namespace, narrowed by selectors", Scope{GVR: podsGVR, Namespace: "a", LabelSelector: "app=web", FieldSelector: "spec.nodeName=n1"}, true},
		{"all namespaces when only some were listed", Scope{GVR: podsGVR}, false},
		{"a namespace never listed", Scope{GVR: podsGVR, Namespace: "z"}, false},
		{"the same label selector", Scope{GVR: podsGVR, Namespace: "b", LabelSelector: "app=web"}, true},
		{"no label selector where one was listed", Scope{GVR: podsGVR, Namespace: "b"}, false},
		{"another label selector", Scope{GVR: podsGVR, Namespace: "b", LabelSelector: "app=db"}, false},
		{"the same label selector plus a field selector", Scope{GVR: podsGVR, Namespace: "b", LabelSelector: "app=web", FieldSelector: "metadata.name=p2"}, true},
		{"the same field selector", Scope{GVR: podsGVR, Namespace: "c", FieldSelector: "spec.nodeName=n1"}, true},
		{"another field selector", Scope{GVR: podsGVR, Namespace: "c", FieldSelector: "spec.nodeName=n2"}, false},
		{"another resource", Scope{GVR: cm, Namespace: "a"}, false},
		{"another version", Scope{GVR: schema.GroupVersionResource{Version: "v2", Resource: "pods"}, Namespace: "a"}, false},
	} {
		_, ok, err := s.List("node", c.req)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if ok != c.ok {
			t.Errorf("%s: covered = %v, want %v", c.name, ok, c.ok)
		}
	}

	// Listing all namespaces covers every namespace.
	if err := s.ReplaceList("node", Scope{GVR: podsGVR}, "PodList", "v1", "20", [][]byte{pod(t, "a", "p1", "n1", "9", web), pod(t, "z", "p9", "n1", "9", web)}); err != nil {
		t.Fatal(err)
	}
	res := mustList(t, s, "node", Scope{GVR: podsGVR, Namespace: "z", LabelSelector: "app=web"})
	if got := names(res.Items); !slices.Equal(got, []string{"z/p9"}) {
		t.Errorf("namespace z under an all-namespaces list: got %v", got)
	}
	if res.ResourceVersion != "20" {
		t.Errorf("resourceVersion = %s, want the newest covering scope's, 20", res.ResourceVersion)
	}
}

func TestIdentitiesAreIsolated(t *testing.T) {
	s := openTemp(t)
	all := Scope{GVR: podsGVR}
	if err := s.ReplaceList("node", all, "PodList", "v1", "5", [][]byte{pod(t, "a", "secret-holder", "n1", "5", nil)}); err != nil {
		t.Fatal(err)
	}
	if err := s.Put("sa:kube-system/coredns", podsGVR, pod(t, "a", "other", "n1", "6", nil)); err != nil {
		t.Fatal(err)
	}
	if _, ok := s.Get("sa:kube-system/coredns", podsGVR, "a", "secret-holder"); ok {
		t.Error("identity B got identity A's object by GET")
	}
	if _, ok, _ := s.List("sa:kube-system/coredns", all); ok {
		t.Error("identity B was answered a LIST from identity A's covered scope")
	}
	if err := s.ReplaceList("sa:kube-system/coredns", all, "PodList", "v1", "7", nil); err != nil {
		t.Fatal(err)
	}
	if got := names(mustList(t, s, "sa:kube-system/coredns", all).Items); len(got) != 0 {
		t.Errorf("identity B's own empty list shows %v", got)
	}
	if got := names(mustList(t, s, "node", all).Items); !slices.Equal(got, []string{"a/secret-holder"}) {
		t.Errorf("identity B's ReplaceList changed identity A's objects: %v", got)
	}
	if _, ok := s.Get("token:", podsGVR, "a", "secret-holder"); ok {
		t.Error("another identity got the object")
	}
	if err := s.Put("", podsGVR, pod(t, "a", "x", "n1", "1", nil)); err == nil {
		t.Error("an empty identity was accepted")
	}
}

func TestReplaceListRemovesStaleObjectsOfItsScopeOnly(t *testing.T) {
	s := openTemp(t)
	web := map[string]string{"app": "web"}
	db := map[string]string{"app": "db"}
	// Outside the scope: another namespace, and a label the scope excludes.
	if err := s.Put("node", podsGVR, pod(t, "b", "elsewhere", "n1", "1", web)); err != nil {
		t.Fatal(err)
	}
	if err := s.Put("node", podsGVR, pod(t, "a", "db-0", "n1", "1", db)); err != nil {
		t.Fatal(err)
	}
	scope := Scope{GVR: podsGVR, Namespace: "a", LabelSelector: "app=web"}
	if err := s.ReplaceList("node", scope, "PodList", "v1", "10", [][]byte{pod(t, "a", "p1", "n1", "8", web), pod(t, "a", "p2", "n1", "9", web)}); err != nil {
		t.Fatal(err)
	}
	if err := s.ReplaceList("node", scope, "PodList", "v1", "20", [][]byte{pod(t, "a", "p2", "n1", "9", web), pod(t, "a", "p3", "n1", "19", web)}); err != nil {
		t.Fatal(err)
	}
	res := mustList(t, s, "node", scope)
	if got := names(res.Items); !slices.Equal(got, []string{"a/p2", "a/p3"}) {
		t.Errorf("after the second list: %v, want [a/p2 a/p3]", got)
	}
	if _, ok := s.Get("node", podsGVR, "a", "p1"); ok {
		t.Error("p1, gone from the list, is still served by GET")
	}
	for _, k := range [][2]string{{"b", "elsewhere"}, {"a", "db-0"}} {
		if _, ok := s.Get("node", podsGVR, k[0], k[1]); !ok {
			t.Errorf("%s/%s, outside the scope, was removed", k[0], k[1])
		}
	}
}

func TestWatchEventsKeepAListCurrent(t *testing.T) {
	s := openTemp(t)
	web := map[string]string{"app": "web"}
	scope := Scope{GVR: podsGVR, Namespace: "a"}
	webScope := Scope{GVR: podsGVR, Namespace: "a", LabelSelector: "app=web"}
	if err := s.ReplaceList("node", scope, "PodList", "v1", "10", [][]byte{pod(t, "a", "p1", "n1", "8", web), pod(t, "a", "p2", "n1", "9", web)}); err != nil {
		t.Fatal(err)
	}
	// ADDED
	if err := s.Put("node", podsGVR, pod(t, "a", "p3", "n1", "12", web)); err != nil {
		t.Fatal(err)
	}
	res := mustList(t, s, "node", scope)
	if got := names(res.Items); !slices.Equal(got, []string{"a/p1", "a/p2", "a/p3"}) || res.ResourceVersion != "12" {
		t.Errorf("after ADDED: %v rv %s, want [a/p1 a/p2 a/p3] rv 12", got, res.ResourceVersion)
	}
	// MODIFIED: p1 loses its label.
	if err := s.Put("node", podsGVR, pod(t, "a", "p1", "n1", "13", map[string]string{"app": "db"})); err != nil {
		t.Fatal(err)
	}
	if got := names(mustList(t, s, "node", webScope).Items); !slices.Equal(got, []string{"a/p2", "a/p3"}) {
		t.Errorf("after MODIFIED: app=web gives %v, want [a/p2 a/p3]", got)
	}
	// DELETED
	if err := s.Delete("node", podsGVR, "a", "p2"); err != nil {
		t.Fatal(err)
	}
	res = mustList(t, s, "node", scope)
	if got := names(res.Items); !slices.Equal(got, []string{"a/p1", "a/p3"}) {
		t.Errorf("after DELETED: %v, want [a/p1 a/p3]", got)
	}
	// An object outside the scope does not move its resourceVersion.
	if err := s.Put("node", podsGVR, pod(t, "b", "q", "n1", "30", web)); err != nil {
		t.Fatal(err)
	}
	if rv := mustList(t, s, "node", scope).ResourceVersion; rv != "13" {
		t.Errorf("resourceVersion = %s after an event in another namespace, want 13", rv)
	}
	// BOOKMARK moves it forward, never back.
	if err := s.Bookmark("node", scope, "40"); err != nil {
		t.Fatal(err)
	}
	if err := s.Bookmark("node", scope, "35"); err != nil {
		t.Fatal(err)
	}
	if rv := mustList(t, s, "node", scope).ResourceVersion; rv != "40" {
		t.Errorf("resourceVersion = %s after bookmarks 40 and 35, want 40", rv)
	}
	// A bookmark for a scope never listed does not make it covered.
	if err := s.Bookmark("node", webScope, "50"); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := s.List("node", Scope{GVR: podsGVR, Namespace: "b"}); ok {
		t.Error("namespace b became covered without a list")
	}
}

// Get returns a copy; List items are read-only but an append to one cannot
// reach the store.
func TestGetCopiesAndListItemsAreSafe(t *testing.T) {
	s := openTemp(t)
	scope := Scope{GVR: podsGVR, Namespace: "a"}
	if err := s.ReplaceList("node", scope, "PodList", "v1", "10", [][]byte{pod(t, "a", "p1", "n1", "8", nil)}); err != nil {
		t.Fatal(err)
	}
	got, ok := s.Get("node", podsGVR, "a", "p1")
	if !ok {
		t.Fatal("p1 not cached")
	}
	want := string(got)
	for i := range got {
		got[i] = 'x'
	}
	items := mustList(t, s, "node", scope).Items
	_ = append(items[0], "garbage"...)
	if err := s.Put("node", podsGVR, pod(t, "a", "p1", "n1", "9", nil)); err != nil {
		t.Fatal(err)
	}
	if string(items[0]) != want {
		t.Error("a List item changed under its reader after a later Put")
	}
	if err := s.Put("node", podsGVR, []byte(want)); err != nil {
		t.Fatal(err)
	}
	if again, _ := s.Get("node", podsGVR, "a", "p1"); string(again) != want {
		t.Error("changing a returned object changed the cached one")
	}
}

func TestListItemsGetKindAndAPIVersion(t *testing.T) {
	s := openTemp(t)
	item := podListItem(t, realisticPod(1, "a", "n1", "web", corev1.PodRunning))
	var m map[string]any
	_ = json.Unmarshal(item, &m)
	if _, has := m["kind"]; has {
		t.Fatal("test setup: list items carry no kind")
	}
	if err := s.ReplaceList("node", Scope{GVR: podsGVR}, "PodList", "v1", "1", [][]byte{item, []byte(`{"metadata":{"name":"tiny","namespace":"a"}}`)}); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"web-7d9c8b6f5-00001", "tiny"} {
		got, ok := s.Get("node", podsGVR, "a", name)
		if !ok {
			t.Fatalf("%s not cached", name)
		}
		var p corev1.Pod
		if err := json.Unmarshal(got, &p); err != nil {
			t.Fatalf("%s: cached JSON is broken: %v", name, err)
		}
		if p.Kind != "Pod" || p.APIVersion != "v1" || p.Name != name {
			t.Errorf("%s: kind %q apiVersion %q name %q, want Pod v1", name, p.Kind, p.APIVersion, p.Name)
		}
	}
}

func TestInvalidInputChangesNothing(t *testing.T) {
	s := openTemp(t)
	scope := Scope{GVR: podsGVR, Namespace: "a"}
	if err := s.ReplaceList("node", scope, "PodList", "v1", "10", [][]byte{pod(t, "a", "p1", "n1", "8", nil)}); err != nil {
		t.Fatal(err)
	}
	for _, bad := range [][]byte{[]byte(`{"metadata":{"name":"p2"`), []byte(`[1,2]`), []byte(`{"metadata":{"namespace":"a"}}`)} {
		if err := s.Put("node", podsGVR, bad); err == nil {
			t.Errorf("Put accepted %s", bad)
		}
		if err := s.ReplaceList("node", scope, "PodList", "v1", "11", [][]byte{pod(t, "a", "p2", "n1", "8", nil), bad}); err == nil {
			t.Errorf("ReplaceList accepted an item %s", bad)
		}
	}
	res := mustList(t, s, "node", scope)
	if got := names(res.Items); !slices.Equal(got, []string{"a/p1"}) || res.ResourceVersion != "10" {
		t.Errorf("after rejected writes: %v rv %s, want [a/p1] rv 10", got, res.ResourceVersion)
	}
	if err := s.ReplaceList("node", Scope{GVR: podsGVR, LabelSelector: "a in (b"}, "PodList", "v1", "1", nil); err == nil {
		t.Error("ReplaceList accepted a malformed selector")
	}
}

// Run with -race: writers and readers of several identities at once.
func TestConcurrentUse(t *testing.T) {
	s := openTemp(t)
	const identities, rounds = 4, 50
	var wg sync.WaitGroup
	errs := make(chan error, 1000)
	for id := 0; id < identities; id++ {
		identity := fmt.Sprintf("sa:ns/%d", id)
		scope := Scope{GVR: podsGVR, Namespace: "a"}
		wg.Add(2)
		go func() {
			defer wg.Done()
			for r := 0; r < rounds; r++ {
				items := [][]byte{pod(t, "a", "keep", "n1", fmt.Sprint(r*10), nil), pod(t, "a", fmt.Sprintf("p%d", r), "n1", fmt.Sprint(r*10+1), nil)}
				if err := s.ReplaceList(identity, scope, "PodList", "v1", fmt.Sprint(r*10+2), items); err != nil {
					errs <- err
				}
				if err := s.Put(identity, podsGVR, pod(t, "a", "w", "n2", fmt.Sprint(r*10+3), nil)); err != nil {
					errs <- err
				}
				if err := s.Bookmark(identity, scope, fmt.Sprint(r*10+4)); err != nil {
					errs <- err
				}
				if err := s.Delete(identity, podsGVR, "a", "w"); err != nil {
					errs <- err
				}
			}
		}()
		go func() {
			defer wg.Done()
			for r := 0; r < rounds; r++ {
				if res, ok, err := s.List(identity, Scope{GVR: podsGVR, Namespace: "a", FieldSelector: "spec.nodeName=n1"}); err != nil {
					errs <- err
				} else if ok && len(res.Items) != 2 {
					errs <- fmt.Errorf("%s: list of n1 has %d items, want 2 (keep and the round's pod)", identity, len(res.Items))
				}
				s.Get(identity, podsGVR, "a", "keep")
				s.Stats()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for id := 0; id < identities; id++ {
		res := mustList(t, s, fmt.Sprintf("sa:ns/%d", id), Scope{GVR: podsGVR, Namespace: "a"})
		want := []string{"a/keep", fmt.Sprintf("a/p%d", rounds-1)}
		if got := names(res.Items); !slices.Equal(got, want) || res.ResourceVersion != fmt.Sprint((rounds-1)*10+4) {
			t.Errorf("identity %d ends with %v rv %s, want %v rv %d", id, got, res.ResourceVersion, want, (rounds-1)*10+4)
		}
	}
}
