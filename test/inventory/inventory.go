// Package inventory lists every object of every listable resource in a
// cluster (through discovery and the dynamic client) so that tests can
// compare a cluster before and after an operation.
//
// Some kinds change on their own in an idle cluster and are left out by
// default (DefaultIgnore): Events (every controller writes them), Leases
// (heartbeats and leader election renew them every few seconds) and
// ComponentStatuses (a live health probe, not stored objects).
package inventory

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
)

// DefaultIgnore are the resources that change without anyone acting.
var DefaultIgnore = []schema.GroupResource{
	{Group: "", Resource: "events"},
	{Group: "events.k8s.io", Resource: "events"},
	{Group: "coordination.k8s.io", Resource: "leases"},
	{Group: "", Resource: "componentstatuses"},
}

// Mode chooses how much of each object counts.
type Mode int

const (
	// Exact keeps every field, resourceVersion and uid included: an object
	// that was written (even to the same content) or re-created differs.
	Exact Mode = iota
	// Content drops what differs between two equal writes made at different
	// times: uid, resourceVersion, creationTimestamp, generation,
	// managedFields, owner uids, status, and the random suffixes of generated
	// names (pods of a ReplicaSet, their token volume). For comparing two ways of making the same objects.
	Content
)

// Inventory maps "group/resource namespace/name" to the object's JSON.
type Inventory map[string]string

// Options tune Take.
type Options struct {
	Mode   Mode
	Ignore []schema.GroupResource // nil means DefaultIgnore
	// Normalize, if set, edits each object (already normalized for Mode)
	// before it is recorded.
	Normalize func(gr schema.GroupResource, u *unstructured.Unstructured)
}

// Take lists the cluster.
func Take(ctx context.Context, cfg *rest.Config, o Options) (Inventory, error) {
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return nil, err
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	lists, err := dc.ServerPreferredResources()
	if err != nil && len(lists) == 0 {
		return nil, err
	}
	ignore := o.Ignore
	if ignore == nil {
		ignore = DefaultIgnore
	}
	skip := map[schema.GroupResource]bool{}
	for _, gr := range ignore {
		skip[gr] = true
	}
	inv := Inventory{}
	for _, l := range lists {
		gv, err := schema.ParseGroupVersion(l.GroupVersion)
		if err != nil {
			return nil, err
		}
		for _, r := range l.APIResources {
			if strings.Contains(r.Name, "/") || !hasVerb(r.Verbs, "list") {
				continue
			}
			gr := schema.GroupResource{Group: gv.Group, Resource: r.Name}
			if skip[gr] {
				continue
			}
			ul, err := dyn.Resource(gv.WithResource(r.Name)).List(ctx, metav1.ListOptions{})
			if err != nil {
				return nil, fmt.Errorf("list %s: %w", gr, err)
			}
			for i := range ul.Items {
				u := &ul.Items[i]
				normalize(o.Mode, u)
				if o.Normalize != nil {
					o.Normalize(gr, u)
				}
				b, err := json.Marshal(u.Object)
				if err != nil {
					return nil, err
				}
				if o.Mode == Content && gr == podsGR {
					// The service account admission names each pod's token
					// volume with a random suffix.
					b = apiAccessVolume.ReplaceAll(b, []byte("kube-api-access-*"))
				}
				inv[gr.String()+" "+u.GetNamespace()+"/"+u.GetName()] = string(b)
			}
		}
	}
	return inv, nil
}

var (
	podsGR          = schema.GroupResource{Resource: "pods"}
	apiAccessVolume = regexp.MustCompile(`kube-api-access-[a-z0-9]{5}`)
)

func hasVerb(verbs []string, v string) bool {
	for _, x := range verbs {
		if x == v {
			return true
		}
	}
	return false
}

func normalize(m Mode, u *unstructured.Unstructured) {
	if m != Content {
		return
	}
	for _, f := range []string{"uid", "resourceVersion", "creationTimestamp", "generation", "managedFields"} {
		unstructured.RemoveNestedField(u.Object, "metadata", f)
	}
	unstructured.RemoveNestedField(u.Object, "status")
	if refs := u.GetOwnerReferences(); len(refs) > 0 {
		for i := range refs {
			refs[i].UID = ""
		}
		u.SetOwnerReferences(refs)
	}
	if g := u.GetGenerateName(); g != "" && strings.HasPrefix(u.GetName(), g) {
		u.SetName(g + "*")
	}
}

// Diff describes how b differs from a, one line per object, sorted.
func Diff(a, b Inventory) []string {
	var out []string
	for k, va := range a {
		vb, ok := b[k]
		switch {
		case !ok:
			out = append(out, "- "+k)
		case va != vb:
			out = append(out, "~ "+k+": "+firstDifference(va, vb))
		}
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			out = append(out, "+ "+k)
		}
	}
	sort.Strings(out)
	return out
}

// firstDifference shows where two JSON texts part.
func firstDifference(a, b string) string {
	i := 0
	for i < len(a) && i < len(b) && a[i] == b[i] {
		i++
	}
	from := max(0, i-60)
	return fmt.Sprintf("…%s… vs …%s…", a[from:min(len(a), i+60)], b[from:min(len(b), i+60)])
}

// Eventually takes inventories until one equals want or timeout passes, and
// returns the last difference. Controllers finish some work after a command
// returns (garbage collection, API registration), so a single look can be
// too early; the wait is bounded.
func Eventually(ctx context.Context, cfg *rest.Config, o Options, want Inventory, timeout time.Duration) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var diff []string
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		got, err := Take(ctx, cfg, o)
		if err != nil {
			if ctx.Err() != nil {
				return diff, nil
			}
			return nil, err
		}
		diff = Diff(want, got)
		if len(diff) == 0 {
			return nil, nil
		}
		select {
		case <-ctx.Done():
			return diff, nil
		case <-tick.C:
		}
	}
}
