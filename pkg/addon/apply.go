package addon

import (
	"context"
	"fmt"
	"io"
	"sync"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"github.com/edgeadm/edgeadm/pkg/state"
)

// Outcome is what happened to one object.
type Outcome string

const (
	Created     Outcome = "created"
	Applied     Outcome = "applied" // made by edgeadm earlier; applied again (a no-op when unchanged)
	Adopted     Outcome = "adopted" // existed, not made by edgeadm: used as it is
	WouldCreate Outcome = "would create"
	WouldApply  Outcome = "would apply"
	WouldAdopt  Outcome = "would adopt"
)

// ObjectResult is one object's outcome.
type ObjectResult struct {
	state.Object `json:",inline"`
	Outcome      Outcome `json:"outcome"`
	Step         string  `json:"step"`
}

// Executor writes a plan. All fields but DryRun and Progress are required.
type Executor struct {
	Client  kubernetes.Interface
	Dynamic dynamic.Interface
	Mapper  meta.ResettableRESTMapper
	DryRun  bool
	// Progress receives one line per object written and per step.
	Progress io.Writer
	// EstablishTimeout bounds the wait for a CRD to be Established.
	EstablishTimeout time.Duration
	// Concurrency bounds the writes in flight.
	Concurrency int

	newNamespaces map[string]bool
}

// Execution is the outcome of Execute.
type Execution struct {
	Objects []ObjectResult
	Record  *state.Record
	// Written are the objects as sent (dry-run prints them), in plan order,
	// without adopted ones, followed by the record.
	Written []*unstructured.Unstructured
}

type itemState struct {
	it      Item
	mapping *meta.RESTMapping
	prev    *state.Object
	// found is the object as it exists, when it was looked up.
	found    *unstructured.Unstructured
	looked   bool
	result   *ObjectResult
	sent     *unstructured.Unstructured
	duration time.Duration
}

// Execute writes plan p on top of the previous record prev (nil if none),
// recording ownership as it goes.
func (e *Executor) Execute(ctx context.Context, p *Plan, prev *state.Record) (*Execution, error) {
	if e.Concurrency <= 0 {
		e.Concurrency = 8
	}
	if e.EstablishTimeout <= 0 {
		e.EstablishTimeout = time.Minute
	}
	var prevOwn *state.Ownership
	if prev != nil {
		prevOwn = &prev.Ownership
	}
	groups := crdGroups(p.Items)
	items := make([]*itemState, len(p.Items))
	for i, it := range p.Items {
		st := &itemState{it: it}
		if o, ok := prevOwn.Find(it.Ref()); ok {
			st.prev = &o
		}
		items[i] = st
	}

	refs := make([]state.Ref, len(items))
	for i, st := range items {
		refs[i] = st.it.Ref()
	}
	rec := newRecorder(ctx, e.Client, prev, p.Config, refs, e.DryRun)
	defer rec.stop()

	// Map every kind the cluster already knows; custom resources of planned
	// CRDs are mapped after their CRD is Established.
	for _, st := range items {
		if groups[st.it.Object.GroupVersionKind().Group] {
			continue
		}
		if err := e.mapItem(st); err != nil {
			return nil, err
		}
	}
	// Look up, concurrently, every object whose existence decides what to do.
	if err := e.forEach(ctx, items, func(st *itemState) bool { return st.mapping != nil && e.needsLookup(st) }, e.lookup); err != nil {
		return nil, err
	}
	// In a dry run, objects in a namespace the run would create cannot be
	// validated by the server (the namespace does not exist yet).
	e.newNamespaces = map[string]bool{}
	for _, st := range items {
		if e.DryRun && st.looked && st.found == nil && st.it.Object.GetKind() == "Namespace" && st.it.Object.GetAPIVersion() == "v1" {
			e.newNamespaces[st.it.Object.GetName()] = true
		}
	}
	for w := 0; w <= 3; w++ {
		var wave []*itemState
		for _, st := range items {
			if wave_ := waveOf(st, groups); wave_ == w {
				wave = append(wave, st)
			}
		}
		if len(wave) == 0 {
			continue
		}
		if w == 3 {
			if err := e.waitEstablished(ctx, items); err != nil {
				return nil, err
			}
			e.Mapper.Reset()
			for _, st := range wave {
				if err := e.mapItem(st); err != nil {
					if !e.DryRun {
						return nil, err
					}
					st.mapping = nil // its CRD does not exist yet: it would be created
				}
			}
			if err := e.forEach(ctx, wave, func(st *itemState) bool { return st.mapping != nil && e.needsLookup(st) }, e.lookup); err != nil {
				return nil, err
			}
		}
		var announce []int
		for _, st := range wave {
			if mayCreate(st) {
				announce = append(announce, indexOf(items, st))
			}
		}
		if err := rec.announce(announce); err != nil {
			return nil, err
		}
		err := e.forEach(ctx, wave, func(*itemState) bool { return true }, func(ctx context.Context, st *itemState) error {
			start := time.Now()
			if err := e.write(ctx, st); err != nil {
				return err
			}
			st.duration = time.Since(start)
			e.progressf("[%s] %s %s (%s)", st.it.Step, st.result.Outcome, st.result.Ref(), round(st.duration))
			return rec.done(indexOf(items, st), st.result.Object)
		})
		if err != nil {
			return nil, err
		}
	}
	final, err := rec.finish()
	if err != nil {
		return nil, err
	}
	ex := &Execution{Record: final}
	for _, st := range items {
		ex.Objects = append(ex.Objects, *st.result)
		if st.sent != nil {
			ex.Written = append(ex.Written, st.sent)
		}
	}
	cm, err := final.ConfigMap()
	if err != nil {
		return nil, err
	}
	u, err := toUnstructured(cm)
	if err != nil {
		return nil, err
	}
	ex.Written = append(ex.Written, u)
	return ex, nil
}

func indexOf(items []*itemState, st *itemState) int {
	for i, x := range items {
		if x == st {
			return i
		}
	}
	return -1
}

func waveOf(st *itemState, groups map[string]bool) int { return wave(st.it, groups) }

func (e *Executor) progressf(format string, args ...any) {
	if e.Progress != nil {
		fmt.Fprintf(e.Progress, format+"\n", args...)
	}
}

func (e *Executor) mapItem(st *itemState) error {
	gvk := st.it.Object.GroupVersionKind()
	m, err := e.Mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if err != nil {
		return fmt.Errorf("the cluster does not serve %s (needed for %s): %w", gvk, st.it.Ref(), err)
	}
	st.mapping = m
	return nil
}

func (e *Executor) resource(st *itemState) dynamic.ResourceInterface {
	r := e.Dynamic.Resource(st.mapping.Resource)
	if st.mapping.Scope.Name() == meta.RESTScopeNameNamespace {
		return r.Namespace(st.it.Object.GetNamespace())
	}
	return r
}

// needsLookup: an applied object edgeadm did not record as its own must be
// looked at before it is touched (it may be the user's); in a dry run every
// object is looked at instead of written.
func (e *Executor) needsLookup(st *itemState) bool {
	if st.it.Mode == Apply {
		return st.prev == nil || st.prev.How != state.Created
	}
	return e.DryRun
}

func (e *Executor) lookup(ctx context.Context, st *itemState) error {
	o, err := e.resource(st).Get(ctx, st.it.Object.GetName(), metav1.GetOptions{})
	st.looked = true
	switch {
	case err == nil:
		st.found = o
	case apierrors.IsNotFound(err):
	default:
		return fmt.Errorf("read %s: %w", st.it.Ref(), err)
	}
	return nil
}

func (e *Executor) forEach(ctx context.Context, items []*itemState, pick func(*itemState) bool, fn func(context.Context, *itemState) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sem := make(chan struct{}, e.Concurrency)
	var wg sync.WaitGroup
	var once sync.Once
	var first error
	for _, st := range items {
		if !pick(st) {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				return
			}
			defer func() { <-sem }()
			if err := fn(ctx, st); err != nil {
				once.Do(func() { first = err; cancel() })
			}
		}()
	}
	wg.Wait()
	if first == nil && ctx.Err() != nil {
		return ctx.Err()
	}
	return first
}

// mayCreate reports whether writing st may create an object the record
// does not yet hold as edgeadm's: it is announced as Pending first.
func mayCreate(st *itemState) bool {
	if st.prev != nil && st.prev.How == state.Created {
		return false
	}
	if st.it.Mode == Apply && st.looked && st.found != nil {
		return false // exists: adopted, or ours and applied
	}
	if st.prev != nil && st.prev.How == state.Adopted && st.it.Mode == CreateIfMissing {
		return false // existed last time; if it is gone now, the window is one object
	}
	return true
}

// prevOurs: the previous record holds the object as edgeadm's, or as
// Pending and it carries edgeadm's label (an interrupted run made it).
func prevOurs(st *itemState, found *unstructured.Unstructured) bool {
	if st.prev == nil {
		return false
	}
	return st.prev.How == state.Created || st.prev.How == state.Pending && found != nil && ours(found)
}

func ours(o *unstructured.Unstructured) bool {
	return o.GetLabels()[state.ManagedByLabel] == state.ManagedByValue
}

func (e *Executor) result(st *itemState, uid string, out Outcome) {
	how := state.Created
	if out == Adopted || out == WouldAdopt {
		how = state.Adopted
	}
	ref := st.it.Ref()
	st.result = &ObjectResult{
		Object: state.Object{APIVersion: ref.APIVersion, Kind: ref.Kind, Namespace: ref.Namespace, Name: ref.Name,
			UID: typesUID(uid), How: how},
		Outcome: out,
		Step:    st.it.Step,
	}
}

func (e *Executor) write(ctx context.Context, st *itemState) error {
	var dry []string
	if e.DryRun {
		dry = []string{metav1.DryRunAll}
	}
	obj := st.it.Object
	ref := st.it.Ref()
	if e.DryRun && (st.mapping == nil || e.newNamespaces[obj.GetNamespace()]) {
		uid := ""
		if st.prev != nil {
			uid = string(st.prev.UID)
		}
		st.sent = obj
		e.result(st, uid, WouldCreate)
		return nil
	}
	switch st.it.Mode {
	case Apply:
		if st.looked && st.found != nil && !ours(st.found) && !prevOurs(st, st.found) {
			e.result(st, string(st.found.GetUID()), pick(e.DryRun, WouldAdopt, Adopted))
			return nil
		}
		out, err := e.resource(st).Apply(ctx, obj.GetName(), obj, metav1.ApplyOptions{FieldManager: state.FieldManager, DryRun: dry})
		if err != nil {
			if apierrors.IsConflict(err) {
				return fmt.Errorf("apply %s: %w: another field manager changed fields edgeadm sets; undo that change (or delete the object) and run addon again", ref, err)
			}
			return fmt.Errorf("apply %s: %w", ref, err)
		}
		st.sent = obj
		uid := string(out.GetUID())
		if e.DryRun && st.found == nil {
			uid = ""
			if st.prev != nil {
				uid = string(st.prev.UID)
			}
		}
		switch {
		case e.DryRun && st.found == nil:
			e.result(st, uid, WouldCreate)
		case e.DryRun:
			e.result(st, uid, WouldApply)
		case st.looked && st.found == nil:
			e.result(st, uid, Created)
		default:
			e.result(st, uid, Applied)
		}
		return nil
	case CreateIfMissing:
		if e.DryRun {
			if st.found != nil {
				out := WouldAdopt
				if prevOurs(st, st.found) {
					out = WouldApply
				}
				e.result(st, string(st.found.GetUID()), out)
				return nil
			}
			if _, err := e.resource(st).Create(ctx, obj, metav1.CreateOptions{FieldManager: state.FieldManager, DryRun: dry}); err != nil && !apierrors.IsAlreadyExists(err) {
				return fmt.Errorf("create %s: %w", ref, err)
			}
			st.sent = obj
			e.result(st, "", WouldCreate)
			return nil
		}
		out, err := e.resource(st).Create(ctx, obj, metav1.CreateOptions{FieldManager: state.FieldManager})
		if err == nil {
			e.result(st, string(out.GetUID()), Created)
			return nil
		}
		if !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("create %s: %w", ref, err)
		}
		if st.prev != nil && st.prev.UID != "" {
			oc := Adopted
			if st.prev.How == state.Created {
				oc = Applied
			}
			e.result(st, string(st.prev.UID), oc)
			return nil
		}
		if err := e.lookup(ctx, st); err != nil {
			return err
		}
		if st.found == nil {
			return fmt.Errorf("create %s: it exists, then vanished: run addon again", ref)
		}
		oc := Adopted
		if prevOurs(st, st.found) {
			oc = Applied
		}
		e.result(st, string(st.found.GetUID()), oc)
		return nil
	}
	return fmt.Errorf("unknown mode %q", st.it.Mode)
}

func pick(dry bool, ifDry, ifReal Outcome) Outcome {
	if dry {
		return ifDry
	}
	return ifReal
}

// waitEstablished waits, with a watch and a bound, until every planned CRD
// is Established. It is called only when the plan holds custom resources.
func (e *Executor) waitEstablished(ctx context.Context, items []*itemState) error {
	if e.DryRun {
		return nil
	}
	for _, st := range items {
		if st.it.Object.GroupVersionKind().GroupKind() != crdGK {
			continue
		}
		start := time.Now()
		if err := WaitEstablished(ctx, e.resource(st), st.it.Object.GetName(), e.EstablishTimeout); err != nil {
			return err
		}
		e.progressf("[%s] CustomResourceDefinition %s Established (%s)", st.it.Step, st.it.Object.GetName(), round(time.Since(start)))
	}
	return nil
}

// WaitEstablished waits until the CRD name has condition Established=True,
// watching it rather than polling, for at most timeout.
func WaitEstablished(ctx context.Context, crds dynamic.ResourceInterface, name string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	sel := fields.OneTermEqualSelector("metadata.name", name).String()
	for {
		l, err := crds.List(ctx, metav1.ListOptions{FieldSelector: sel})
		if err != nil {
			return fmt.Errorf("wait for CRD %s: %w", name, err)
		}
		for i := range l.Items {
			if established(&l.Items[i]) {
				return nil
			}
		}
		w, err := crds.Watch(ctx, metav1.ListOptions{FieldSelector: sel, ResourceVersion: l.GetResourceVersion()})
		if err != nil {
			return fmt.Errorf("wait for CRD %s: %w", name, err)
		}
		done, err := func() (bool, error) {
			defer w.Stop()
			for {
				select {
				case <-ctx.Done():
					return false, fmt.Errorf("CRD %s not Established after %s: check the apiserver's log", name, timeout)
				case ev, ok := <-w.ResultChan():
					if !ok {
						return false, nil // watch closed: list again
					}
					if ev.Type == watch.Error {
						return false, nil
					}
					if u, ok := ev.Object.(*unstructured.Unstructured); ok && established(u) {
						return true, nil
					}
				}
			}
		}()
		if done || err != nil {
			return err
		}
	}
}

func established(u *unstructured.Unstructured) bool {
	conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
	for _, c := range conds {
		m, _ := c.(map[string]any)
		if m["type"] == string(apiextensionsv1.Established) && m["status"] == string(apiextensionsv1.ConditionTrue) {
			return true
		}
	}
	return false
}

var _ = schema.GroupVersionResource{}

func round(d time.Duration) time.Duration {
	switch {
	case d > time.Second:
		return d.Round(10 * time.Millisecond)
	case d > time.Millisecond:
		return d.Round(100 * time.Microsecond)
	}
	return d
}
