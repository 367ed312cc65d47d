package detach

import (
	"context"
	"io"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	dynamicfake "k8s.io/client-go/dynamic/fake"

	"github.com/edgeadm/edgeadm/pkg/state"
)

func configMap(name, uid string, labelled bool) *corev1.ConfigMap {
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns", UID: types.UID(uid)}}
	if labelled {
		cm.Labels = map[string]string{state.ManagedByLabel: state.ManagedByValue}
	}
	return cm
}

func recorded(name, uid string, how state.How) state.Object {
	return state.Object{APIVersion: "v1", Kind: "ConfigMap", Namespace: "ns", Name: name, UID: types.UID(uid), How: how}
}

// deleteAll deletes exactly what edgeadm made: by uid when recorded, by
// label when not, and never an adopted object or one re-created since.
func TestDeleteAllDeletesOnlyWhatEdgeadmMade(t *testing.T) {
	scheme := runtime.NewScheme()
	_ = corev1.AddToScheme(scheme)
	dyn := dynamicfake.NewSimpleDynamicClient(scheme,
		configMap("made", "u1", true),
		configMap("replaced", "u-new", true), // re-created by someone after addon
		configMap("adopted", "u3", false),
		configMap("pending-ours", "u4", true),
		configMap("pending-theirs", "u5", false),
	)
	mapper := meta.NewDefaultRESTMapper(nil)
	mapper.Add(corev1.SchemeGroupVersion.WithKind("ConfigMap"), meta.RESTScopeNamespace)
	d := &deleter{dyn: dyn, mapper: mapper, timeout: 10 * time.Second, progress: io.Discard}
	own := state.Ownership{Objects: []state.Object{
		recorded("made", "u1", state.Created),
		recorded("replaced", "u-old", state.Created),
		recorded("adopted", "u3", state.Adopted),
		recorded("pending-ours", "", state.Pending),
		recorded("pending-theirs", "", state.Pending),
		recorded("gone", "u6", state.Created),
	}}
	actions, remaining, err := d.deleteAll(context.Background(), own)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, a := range actions {
		got[a.Name] = a.Done
	}
	want := map[string]string{
		"made": "deleted", "replaced": "kept (replaced since addon)", "adopted": "kept (adopted)",
		"pending-ours": "deleted", "pending-theirs": "kept (not labelled app.kubernetes.io/managed-by=edgeadm)",
		"gone": "already gone",
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: %q, want %q", k, got[k], v)
		}
	}
	left, _ := dyn.Resource(corev1.SchemeGroupVersion.WithResource("configmaps")).Namespace("ns").List(context.Background(), metav1.ListOptions{})
	names := map[string]bool{}
	for _, u := range left.Items {
		names[u.GetName()] = true
	}
	if names["made"] || names["pending-ours"] || !names["replaced"] || !names["adopted"] || !names["pending-theirs"] {
		t.Errorf("left in the cluster: %v", names)
	}
	if len(remaining.Objects) != 1 || remaining.Objects[0].Name != "adopted" {
		t.Errorf("remaining record: %+v", remaining.Objects)
	}
}

func TestDeleteAllDryRunDeletesNothing(t *testing.T) {
	scheme := runtime.NewScheme()
	_ = corev1.AddToScheme(scheme)
	dyn := dynamicfake.NewSimpleDynamicClient(scheme, configMap("made", "u1", true))
	mapper := meta.NewDefaultRESTMapper(nil)
	mapper.Add(corev1.SchemeGroupVersion.WithKind("ConfigMap"), meta.RESTScopeNamespace)
	d := &deleter{dyn: dyn, mapper: mapper, dry: true, timeout: time.Second, progress: io.Discard}
	actions, _, err := d.deleteAll(context.Background(), state.Ownership{Objects: []state.Object{recorded("made", "u1", state.Created)}})
	if err != nil || len(actions) != 1 || actions[0].Done != "would delete" {
		t.Fatalf("actions %+v, err %v", actions, err)
	}
	if _, err := dyn.Resource(corev1.SchemeGroupVersion.WithResource("configmaps")).Namespace("ns").Get(context.Background(), "made", metav1.GetOptions{}); err != nil {
		t.Fatalf("dry run deleted it: %v", err)
	}
}
