package state

import (
	"fmt"

	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
)

// How says how an object came into edgeadm's record.
type How string

const (
	// Created: addon made the object; detach deletes it.
	Created How = "created"
	// Adopted: the object existed before addon (the user's, kubeadm's or the
	// cluster's own); addon uses it as it is, never edits it, and detach
	// leaves it byte-for-byte as it found it.
	Adopted How = "adopted"
	// Pending: addon was about to create the object when it wrote the
	// record (it writes this before creating anything, so an interrupted
	// addon is detachable). detach deletes it only if it exists and carries
	// the managed-by=edgeadm label; the next addon settles it.
	Pending How = "pending"
)

// Object is one object addon created or adopted.
type Object struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Namespace  string `json:"namespace,omitempty"`
	Name       string `json:"name"`
	// UID is the object's uid when addon saw it. Empty when the record was
	// written by applying "addon --dry-run" output, where no uid is known
	// yet; detach then checks the managed-by label instead.
	UID types.UID `json:"uid,omitempty"`
	How How       `json:"how"`
}

// Ref is an object's identity without its uid or how it was recorded.
type Ref struct {
	APIVersion, Kind, Namespace, Name string
}

// Ref returns o's identity.
func (o Object) Ref() Ref {
	return Ref{APIVersion: o.APIVersion, Kind: o.Kind, Namespace: o.Namespace, Name: o.Name}
}

// GroupVersionKind returns o's apiVersion and kind.
func (r Ref) GroupVersionKind() schema.GroupVersionKind {
	return schema.FromAPIVersionAndKind(r.APIVersion, r.Kind)
}

func (r Ref) String() string {
	gk := r.GroupVersionKind().GroupKind()
	if r.Namespace == "" {
		return fmt.Sprintf("%s %s", gk.String(), r.Name)
	}
	return fmt.Sprintf("%s %s/%s", gk.String(), r.Namespace, r.Name)
}

// Ownership is what addon created and adopted, in the order it did so.
// Detach deletes the Created ones in reverse order.
type Ownership struct {
	Objects []Object `json:"objects"`
}

// Find returns the entry for ref, if any.
func (o *Ownership) Find(ref Ref) (Object, bool) {
	if o == nil {
		return Object{}, false
	}
	for _, obj := range o.Objects {
		if obj.Ref() == ref {
			return obj, true
		}
	}
	return Object{}, false
}

// Created returns the entries addon created or was about to create
// (Pending), in record order: what detach deletes.
func (o *Ownership) Created() []Object {
	if o == nil {
		return nil
	}
	var out []Object
	for _, obj := range o.Objects {
		if obj.Deletable() {
			out = append(out, obj)
		}
	}
	return out
}

// Deletable reports whether detach deletes the object (Created or Pending).
func (o Object) Deletable() bool { return o.How == Created || o.How == Pending }

// Merge returns the ownership that results from a run that saw current
// (in plan order) on top of a previous record prev:
//   - an object prev recorded as Created stays Created, even if this run
//     found it existing (it found it because an earlier run made it);
//   - otherwise this run's finding counts;
//   - entries of prev this run did not touch (an older plan's objects) are
//     kept after the current ones, so detach still removes them.
//
// The result depends only on its inputs, never on timing, so an unchanged
// cluster gives a byte-identical record.
func Merge(prev *Ownership, current []Object) Ownership {
	var out Ownership
	seen := map[Ref]bool{}
	for _, c := range current {
		if p, ok := prev.Find(c.Ref()); ok && p.How == Created {
			c.How = Created
			if c.UID == "" {
				c.UID = p.UID
			}
		}
		seen[c.Ref()] = true
		out.Objects = append(out.Objects, c)
	}
	if prev != nil {
		for _, p := range prev.Objects {
			if !seen[p.Ref()] {
				seen[p.Ref()] = true
				out.Objects = append(out.Objects, p)
			}
		}
	}
	return out
}
