package addon

import (
	"context"
	"sync"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/edgeadm/edgeadm/pkg/state"
)

// recorder keeps the ownership record in step with what has been written:
// every finished object triggers a write of the record, coalesced so that
// at most one write is in flight and the latest state always follows. An
// interrupted addon therefore leaves a record of what it made (short of
// the objects in flight), and detach can undo it.
type recorder struct {
	ctx    context.Context
	client kubernetes.Interface
	dry    bool

	mu      sync.Mutex
	rec     *state.Record
	prev    *state.Ownership
	current []*state.Object
	refs    []state.Ref // the planned objects, in plan order
	pend    []bool      // announced as Pending, not done yet
	dirty   bool
	err     error

	kick chan struct{}
	wg   sync.WaitGroup
	quit chan struct{}
}

func newRecorder(ctx context.Context, c kubernetes.Interface, prev *state.Record, cfg state.Config, refs []state.Ref, dry bool) *recorder {
	r := &recorder{ctx: context.WithoutCancel(ctx), client: c, dry: dry, current: make([]*state.Object, len(refs)), refs: refs, pend: make([]bool, len(refs)),
		kick: make(chan struct{}, 1), quit: make(chan struct{})}
	if prev != nil {
		cp := *prev
		r.rec = &cp
		own := prev.Ownership
		r.prev = &own
	} else {
		r.rec = &state.Record{}
	}
	r.rec.Config = cfg
	if !dry {
		r.wg.Add(1)
		go r.loop()
	}
	return r
}

func (r *recorder) loop() {
	defer r.wg.Done()
	for {
		select {
		case <-r.kick:
			r.flush()
		case <-r.quit:
			return
		}
	}
}

// flush writes the latest state if it changed since the last write.
func (r *recorder) flush() {
	r.mu.Lock()
	if !r.dirty || r.err != nil {
		r.mu.Unlock()
		return
	}
	r.dirty = false
	r.rec.Ownership = r.merged()
	snapshot := *r.rec
	r.mu.Unlock()
	err := state.Save(r.ctx, r.client, &snapshot)
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil && r.err == nil {
		r.err = err
	}
	r.rec.UID, r.rec.ResourceVersion = snapshot.UID, snapshot.ResourceVersion
	r.rec.SetStored(snapshot)
}

// merged is the record as of now: planned objects in plan order, each with
// this run's finding when it has one and otherwise with what the previous
// record said (so an unchanged cluster never sees a reordered record), then
// the previous record's other entries.
func (r *recorder) merged() state.Ownership {
	var cur []state.Object
	for i, o := range r.current {
		switch {
		case o != nil:
			cur = append(cur, *o)
		case r.pend[i]:
			ref := r.refs[i]
			cur = append(cur, state.Object{APIVersion: ref.APIVersion, Kind: ref.Kind, Namespace: ref.Namespace, Name: ref.Name, How: state.Pending})
		case r.refs != nil:
			if p, ok := r.prev.Find(r.refs[i]); ok {
				cur = append(cur, p)
			}
		}
	}
	return state.Merge(r.prev, cur)
}

// announce records the objects about to be created as Pending and writes
// the record before returning, so that no object exists unrecorded.
func (r *recorder) announce(idx []int) error {
	if r.dry || len(idx) == 0 {
		return nil
	}
	r.mu.Lock()
	for _, i := range idx {
		r.pend[i] = true
	}
	r.dirty = true
	r.mu.Unlock()
	r.flush()
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.err
}

// done records object i's outcome and returns the first write error, if any.
func (r *recorder) done(i int, o state.Object) error {
	r.mu.Lock()
	r.current[i] = &o
	r.dirty = true
	err := r.err
	r.mu.Unlock()
	select {
	case r.kick <- struct{}{}:
	default:
	}
	return err
}

// finish writes the final record and returns it.
func (r *recorder) finish() (*state.Record, error) {
	r.stop()
	r.mu.Lock()
	r.rec.Ownership = r.merged()
	r.dirty = !r.dry
	r.mu.Unlock()
	if !r.dry {
		r.flush()
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.rec, r.err
}

func (r *recorder) stop() {
	select {
	case <-r.quit:
	default:
		close(r.quit)
	}
	r.wg.Wait()
}

func typesUID(s string) types.UID { return types.UID(s) }

func toUnstructured(o runtime.Object) (*unstructured.Unstructured, error) {
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(o)
	if err != nil {
		return nil, err
	}
	u := &unstructured.Unstructured{Object: m}
	unstructured.RemoveNestedField(u.Object, "metadata", "creationTimestamp")
	return u, nil
}
