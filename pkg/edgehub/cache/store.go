package cache

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	bolt "go.etcd.io/bbolt"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/klog/v2"
)

// ErrClosed is returned by writes to a closed store.
var ErrClosed = errors.New("edgehub cache is closed")

// DiskStore is the Store edgehub runs with: everything in memory, indexed
// for selectors, and persisted to one bbolt file by a background writer.
type DiskStore struct {
	// mu guards identities and closed. Lock order: mu, then the writer's.
	mu         sync.RWMutex
	identities map[string]*identityCache
	closed     bool

	path string
	db   *bolt.DB
	w    *writer
	log  klog.Logger
}

var _ Store = (*DiskStore)(nil)

func checkRef(identity string, gvr schema.GroupVersionResource) error {
	if identity == "" {
		// Refused so that a caller that failed to tell who asked cannot
		// file objects where anyone could read them back.
		return errors.New("edgehub cache: empty identity")
	}
	if gvr.Version == "" || gvr.Resource == "" {
		return fmt.Errorf("edgehub cache: incomplete resource %q", gvr.String())
	}
	return nil
}

// resourceFor returns (creating) identity's cache of gvr. Needs mu held for writing.
func (s *DiskStore) resourceFor(identity string, gvr schema.GroupVersionResource) *resourceCache {
	id := s.identities[identity]
	if id == nil {
		id = &identityCache{resources: map[schema.GroupVersionResource]*resourceCache{}}
		s.identities[identity] = id
	}
	r := id.resources[gvr]
	if r == nil {
		r = newResourceCache(gvr)
		id.resources[gvr] = r
	}
	return r
}

// lookup returns identity's cache of gvr or nil. Needs mu held.
func (s *DiskStore) lookup(identity string, gvr schema.GroupVersionResource) *resourceCache {
	if id := s.identities[identity]; id != nil {
		return id.resources[gvr]
	}
	return nil
}

// Put records one object. Covered scopes the object falls in (namespace and
// selectors match) advance their resourceVersion to the object's when it
// is newer: a LIST served offline then carries the newest resourceVersion
// the store has seen within that scope.
func (s *DiskStore) Put(identity string, gvr schema.GroupVersionResource, object []byte) error {
	if err := checkRef(identity, gvr); err != nil {
		return err
	}
	if !json.Valid(object) {
		return fmt.Errorf("caching a %s object for %s: not valid JSON", gvr.Resource, identity)
	}
	raw := bytes.Clone(object)

	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	r := s.resourceFor(identity, gvr)
	res, err := scan(raw, r.plan)
	if err != nil {
		return fmt.Errorf("caching a %s object for %s: %w", gvr.Resource, identity, err)
	}
	e := r.newEntry(raw, res)
	if e.name == "" {
		return fmt.Errorf("caching a %s object for %s: no metadata.name", gvr.Resource, identity)
	}
	if old := r.set(e); old == nil || !bytes.Equal(old.raw, e.raw) {
		s.w.put(bucketObjects, objectKey(identity, gvr, e.namespace, e.name), e.raw)
	}
	s.advanceScopes(identity, r, e)
	return nil
}

func (s *DiskStore) advanceScopes(identity string, r *resourceCache, e *entry) {
	if e.rv == "" {
		return
	}
	for scope, cs := range r.scopes {
		if !newerRV(e.rv, cs.resourceVersion) {
			continue
		}
		if !inScope(scope, cs.sel, e, r.fieldsView(cs.sel.fieldNames)) {
			continue
		}
		cs.resourceVersion = e.rv
		s.persistScope(identity, scope, cs)
	}
}

func (s *DiskStore) persistScope(identity string, scope Scope, cs *coveredScope) {
	rec, _ := json.Marshal(scopeRecord{Kind: cs.kind, APIVersion: cs.apiVersion, ResourceVersion: cs.resourceVersion})
	s.w.put(bucketScopes, scopeKey(identity, scope), rec)
}

// Delete forgets one object. It does not move any resourceVersion: the
// deletion's resourceVersion is not known here (a Bookmark moves it).
func (s *DiskStore) Delete(identity string, gvr schema.GroupVersionResource, namespace, name string) error {
	if err := checkRef(identity, gvr); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	r := s.lookup(identity, gvr)
	if r == nil {
		return nil
	}
	if r.remove(namespace, name) != nil {
		s.w.del(bucketObjects, objectKey(identity, gvr, namespace, name))
	}
	return nil
}

// ReplaceList records a complete LIST answer (see Store). Items without
// kind/apiVersion (the apiserver leaves them out of list items) get the
// list's, minus its "List" suffix, so that a later offline GET of the
// object returns a complete object. Nothing changes when an item is
// invalid.
func (s *DiskStore) ReplaceList(identity string, scope Scope, kind, apiVersion, resourceVersion string, items [][]byte) error {
	if err := checkRef(identity, scope.GVR); err != nil {
		return err
	}
	sel, err := parseSelectors(scope)
	if err != nil {
		return fmt.Errorf("caching a %s list for %s: %w", scope.GVR.Resource, identity, err)
	}
	raws := make([][]byte, len(items))
	for i, item := range items {
		if !json.Valid(item) {
			return fmt.Errorf("caching a %s list for %s: item %d is not valid JSON", scope.GVR.Resource, identity, i)
		}
		raws[i] = bytes.Clone(item)
	}
	itemKind, hasItemKind := strings.CutSuffix(kind, "List")

	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	r := s.resourceFor(identity, scope.GVR)
	r.indexFields(sel.fieldNames, true)
	entries := make([]*entry, len(raws))
	keep := make(map[[2]string]bool, len(raws))
	for i, raw := range raws {
		res, err := scan(raw, r.plan)
		if err != nil {
			return fmt.Errorf("caching a %s list for %s: item %d: %w", scope.GVR.Resource, identity, i, err)
		}
		if res.values[slotName] == "" {
			return fmt.Errorf("caching a %s list for %s: item %d has no metadata.name", scope.GVR.Resource, identity, i)
		}
		if hasItemKind && itemKind != "" {
			raw = withTypeMeta(raw, &res, itemKind, apiVersion)
		}
		e := r.newEntry(raw, res)
		entries[i] = e
		keep[[2]string{e.namespace, e.name}] = true
	}

	view := r.fieldsView(sel.fieldNames)
	var stale []*entry
	r.each(scope.Namespace, func(e *entry) {
		if !keep[[2]string{e.namespace, e.name}] && inScope(scope, sel, e, view) {
			stale = append(stale, e)
		}
	})
	for _, e := range stale {
		r.remove(e.namespace, e.name)
		s.w.del(bucketObjects, objectKey(identity, scope.GVR, e.namespace, e.name))
	}
	for _, e := range entries {
		// A relist after a reconnect mostly repeats what is stored: only
		// changed objects are written.
		if old := r.set(e); old == nil || !bytes.Equal(old.raw, e.raw) {
			s.w.put(bucketObjects, objectKey(identity, scope.GVR, e.namespace, e.name), e.raw)
		}
	}
	cs := &coveredScope{kind: kind, apiVersion: apiVersion, resourceVersion: resourceVersion, sel: sel}
	r.scopes[scope] = cs
	s.persistScope(identity, scope, cs)
	return nil
}

// withTypeMeta returns raw with "kind" and "apiVersion" members added where
// the scan found none, and records them in res.
func withTypeMeta(raw []byte, res *scanResult, kind, apiVersion string) []byte {
	var add []byte
	if res.values[slotKind] == "" {
		k, _ := json.Marshal(kind)
		add = append(append(add, `"kind":`...), k...)
		res.values[slotKind] = kind
	}
	if res.values[slotAPIVersion] == "" && apiVersion != "" {
		v, _ := json.Marshal(apiVersion)
		if len(add) > 0 {
			add = append(add, ',')
		}
		add = append(append(add, `"apiVersion":`...), v...)
		res.values[slotAPIVersion] = apiVersion
	}
	if len(add) == 0 {
		return raw
	}
	open := bytes.IndexByte(raw, '{')
	rest := raw[open+1:]
	if t := bytes.TrimLeft(rest, " \t\r\n"); len(t) > 0 && t[0] != '}' {
		add = append(add, ',')
	}
	out := make([]byte, 0, len(raw)+len(add))
	out = append(out, raw[:open+1]...)
	out = append(out, add...)
	return append(out, rest...)
}

// Bookmark advances a covered scope's resourceVersion. A scope that is not
// covered is left alone: a bookmark alone does not make a list complete.
func (s *DiskStore) Bookmark(identity string, scope Scope, resourceVersion string) error {
	if err := checkRef(identity, scope.GVR); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	r := s.lookup(identity, scope.GVR)
	if r == nil {
		return nil
	}
	cs := r.scopes[scope]
	if cs == nil || resourceVersion == "" || resourceVersion == cs.resourceVersion {
		return nil
	}
	// Numeric resourceVersions only move forward; anything else is the
	// apiserver's word and taken as is.
	if newerRV(cs.resourceVersion, resourceVersion) {
		return nil
	}
	cs.resourceVersion = resourceVersion
	s.persistScope(identity, scope, cs)
	return nil
}

// Get returns a copy of one object of identity's.
func (s *DiskStore) Get(identity string, gvr schema.GroupVersionResource, namespace, name string) ([]byte, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	r := s.lookup(identity, gvr)
	if r == nil {
		return nil, false
	}
	e := r.get(namespace, name)
	if e == nil {
		return nil, false
	}
	return bytes.Clone(e.raw), true
}

// List answers a LIST offline (see Store). Among the covered scopes that
// cover the request, the one with the newest resourceVersion gives the
// answer's kind, apiVersion and resourceVersion. Items are the store's own
// bytes, to be read, not modified (see ListResult).
func (s *DiskStore) List(identity string, req Scope) (ListResult, bool, error) {
	sel, err := parseSelectors(req)
	if err != nil {
		return ListResult{}, false, fmt.Errorf("listing %s for %s: %w", req.GVR.Resource, identity, err)
	}
	for attempt := 0; ; attempt++ {
		s.mu.RLock()
		r := s.lookup(identity, req.GVR)
		if r == nil {
			s.mu.RUnlock()
			return ListResult{}, false, nil
		}
		cs := r.covering(req)
		if cs == nil {
			s.mu.RUnlock()
			return ListResult{}, false, nil
		}
		missing := r.missingFields(sel.fieldNames)
		if len(missing) > 0 && attempt == 0 {
			// First request for these fields: index them (a write) and retry.
			s.mu.RUnlock()
			s.mu.Lock()
			if r := s.lookup(identity, req.GVR); r != nil {
				r.indexFields(missing, false)
			}
			s.mu.Unlock()
			continue
		}
		result := r.list(req, sel, cs, missing)
		s.mu.RUnlock()
		return result, true, nil
	}
}

// covering returns the covered scope with the newest resourceVersion that
// covers req: same resource (r is per resource), the same namespace or all
// namespaces, and each selector empty or equal to the request's.
func (r *resourceCache) covering(req Scope) *coveredScope {
	var best *coveredScope
	for scope, cs := range r.scopes {
		if scope.Namespace != "" && scope.Namespace != req.Namespace {
			continue
		}
		if scope.LabelSelector != "" && scope.LabelSelector != req.LabelSelector {
			continue
		}
		if scope.FieldSelector != "" && scope.FieldSelector != req.FieldSelector {
			continue
		}
		if best == nil || newerRV(cs.resourceVersion, best.resourceVersion) {
			best = cs
		}
	}
	return best
}

// fieldsView prepares matching on the named fields.
func (r *resourceCache) fieldsView(names []string) *entryFields {
	f := &entryFields{}
	for _, n := range names {
		if i, ok := r.fieldIndex[n]; ok {
			f.cols = append(f.cols, fieldColumn{field: n, index: i})
		}
	}
	return f
}

// list filters, sorts and copies. unindexed fields (over maxIndexedFields)
// are read from each candidate's JSON.
func (r *resourceCache) list(req Scope, sel parsedSelectors, cs *coveredScope, unindexed []string) ListResult {
	view := r.fieldsView(sel.fieldNames)
	var slow *scanPlan
	var slowSlots [][]int
	if len(unindexed) > 0 {
		var paths [][]string
		for _, f := range unindexed {
			for _, p := range ruleFor(r.gvr, f).paths {
				paths = append(paths, splitPath(p))
			}
		}
		slow = newScanPlan(paths)
		for _, f := range unindexed {
			var slots []int
			for _, p := range ruleFor(r.gvr, f).paths {
				slots = append(slots, slow.slotOf(splitPath(p)))
			}
			slowSlots = append(slowSlots, slots)
		}
		view.slow = make(map[string]string, len(unindexed))
	}

	var matched []*entry
	r.each(req.Namespace, func(e *entry) {
		if slow != nil {
			res, _ := scan(e.raw, slow)
			for i, f := range unindexed {
				v := ruleFor(r.gvr, f).def
				for _, slot := range slowSlots[i] {
					if res.values != nil && res.values[slot] != "" {
						v = res.values[slot]
						break
					}
				}
				view.slow[f] = v
			}
		}
		if sel.matches(e, view) {
			matched = append(matched, e)
		}
	})
	slices.SortFunc(matched, func(a, b *entry) int {
		if c := strings.Compare(a.namespace, b.namespace); c != 0 {
			return c
		}
		return strings.Compare(a.name, b.name)
	})
	// The stored bytes themselves, capacity clipped so an append cannot
	// reach them: copying 5,000 pods (20 MB) would cost more than all the
	// rest of the answer. The store never modifies stored bytes in place.
	items := make([][]byte, len(matched))
	for i, e := range matched {
		items[i] = e.raw[:len(e.raw):len(e.raw)]
	}
	return ListResult{Kind: cs.kind, APIVersion: cs.apiVersion, ResourceVersion: cs.resourceVersion, Items: items}
}

// Close flushes pending changes to disk and closes the file. Reads after
// Close find nothing; writes return ErrClosed.
func (s *DiskStore) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.identities = map[string]*identityCache{}
	s.mu.Unlock()
	return errors.Join(s.w.close(), s.db.Close())
}

// Stats are figures for metrics and readiness.
type Stats struct {
	Identities    int
	Objects       int
	CoveredScopes int
	// PendingWrites counts changed keys not yet on disk.
	PendingWrites int
	// WriteError is the last failed write to disk, nil once one succeeds.
	WriteError error
}

// Stats counts what the store holds.
func (s *DiskStore) Stats() Stats {
	s.mu.RLock()
	st := Stats{Identities: len(s.identities)}
	for _, id := range s.identities {
		for _, r := range id.resources {
			st.Objects += r.count
			st.CoveredScopes += len(r.scopes)
		}
	}
	s.mu.RUnlock()
	if s.w != nil {
		st.PendingWrites, st.WriteError = s.w.status()
	}
	return st
}

// Path is the cache file.
func (s *DiskStore) Path() string { return s.path }
