package cache

import (
	"strconv"

	"k8s.io/apimachinery/pkg/runtime/schema"
)

// maxIndexedFields bounds how many distinct selector fields a resource
// indexes per object: the fields of covered scopes are always indexed, the
// first fields offline requests ask for are indexed on first use, and
// beyond this bound a request's extra fields are read from the JSON per
// request, so a client cycling through field names cannot grow memory.
const maxIndexedFields = 16

// entry is one cached object: its JSON, never modified once stored (Get
// copies, List copies), and what selectors need, indexed when stored.
type entry struct {
	raw       []byte
	namespace string
	name      string
	rv        string
	labels    labelPairs
	fields    []string // by resourceCache.fieldNames
}

// coveredScope is a scope an identity listed online.
type coveredScope struct {
	kind, apiVersion, resourceVersion string
	sel                               parsedSelectors
}

// identityCache is what one identity read.
type identityCache struct {
	resources map[schema.GroupVersionResource]*resourceCache
}

// resourceCache is one identity's objects of one resource.
type resourceCache struct {
	gvr schema.GroupVersionResource
	// objects by namespace ("" for cluster-scoped), then name.
	objects map[string]map[string]*entry
	count   int
	scopes  map[Scope]*coveredScope

	fieldNames []string // indexed selector fields
	fieldIndex map[string]int
	fieldSlots [][]int  // per indexed field: plan slots of its JSON paths
	fieldDefs  []string // per indexed field: value when the object lacks it
	plan       *scanPlan
}

func newResourceCache(gvr schema.GroupVersionResource) *resourceCache {
	r := &resourceCache{
		gvr:        gvr,
		objects:    map[string]map[string]*entry{},
		scopes:     map[Scope]*coveredScope{},
		fieldIndex: map[string]int{},
	}
	r.rebuildPlan()
	return r
}

func (r *resourceCache) rebuildPlan() {
	var paths [][]string
	for _, f := range r.fieldNames {
		for _, p := range ruleFor(r.gvr, f).paths {
			paths = append(paths, splitPath(p))
		}
	}
	r.plan = newScanPlan(paths)
	r.fieldSlots = r.fieldSlots[:0]
	r.fieldDefs = r.fieldDefs[:0]
	for _, f := range r.fieldNames {
		rule := ruleFor(r.gvr, f)
		var slots []int
		for _, p := range rule.paths {
			slots = append(slots, r.plan.slotOf(splitPath(p)))
		}
		r.fieldSlots = append(r.fieldSlots, slots)
		r.fieldDefs = append(r.fieldDefs, rule.def)
	}
}

// isMetaField says whether a field is served from the entry itself.
func isMetaField(f string) bool { return f == "metadata.name" || f == "metadata.namespace" }

// indexFields makes sure the named fields are indexed and returns those it
// could not index because of maxIndexedFields (unless force). Adding fields
// rescans every object of the resource once.
func (r *resourceCache) indexFields(names []string, force bool) (notIndexed []string) {
	added := false
	for _, f := range names {
		if isMetaField(f) {
			continue
		}
		if _, ok := r.fieldIndex[f]; ok {
			continue
		}
		if !force && len(r.fieldNames) >= maxIndexedFields {
			notIndexed = append(notIndexed, f)
			continue
		}
		r.fieldIndex[f] = len(r.fieldNames)
		r.fieldNames = append(r.fieldNames, f)
		added = true
	}
	if !added {
		return notIndexed
	}
	r.rebuildPlan()
	for _, byName := range r.objects {
		for _, e := range byName {
			res, err := scan(e.raw, r.plan)
			if err != nil {
				// Only a field path nested deeper than maxScanDepth
				// fails here (the JSON scanned when stored): such a
				// field reads as unset.
				res = scanResult{values: make([]string, r.plan.slots)}
			}
			e.fields = r.fieldValues(res)
		}
	}
	return notIndexed
}

// missingFields lists names that are neither meta fields nor indexed.
func (r *resourceCache) missingFields(names []string) []string {
	var out []string
	for _, f := range names {
		if _, ok := r.fieldIndex[f]; !ok && !isMetaField(f) {
			out = append(out, f)
		}
	}
	return out
}

func (r *resourceCache) fieldValues(res scanResult) []string {
	if len(r.fieldNames) == 0 {
		return nil
	}
	out := make([]string, len(r.fieldNames))
	for i := range r.fieldNames {
		out[i] = r.fieldDefs[i]
		for _, slot := range r.fieldSlots[i] {
			if v := res.values[slot]; v != "" {
				out[i] = v
				break
			}
		}
	}
	return out
}

// newEntry indexes a scanned object. raw must not be modified afterwards.
func (r *resourceCache) newEntry(raw []byte, res scanResult) *entry {
	return &entry{
		raw:       raw,
		namespace: res.values[slotNamespace],
		name:      res.values[slotName],
		rv:        res.values[slotResourceVersion],
		labels:    res.labels,
		fields:    r.fieldValues(res),
	}
}

func (r *resourceCache) get(namespace, name string) *entry {
	return r.objects[namespace][name]
}

// set stores e and returns the entry it replaced, if any.
func (r *resourceCache) set(e *entry) *entry {
	byName := r.objects[e.namespace]
	if byName == nil {
		byName = map[string]*entry{}
		r.objects[e.namespace] = byName
	}
	old := byName[e.name]
	byName[e.name] = e
	if old == nil {
		r.count++
	}
	return old
}

func (r *resourceCache) remove(namespace, name string) *entry {
	byName := r.objects[namespace]
	old := byName[name]
	if old == nil {
		return nil
	}
	delete(byName, name)
	if len(byName) == 0 {
		delete(r.objects, namespace)
	}
	r.count--
	return old
}

// each calls fn for the objects in namespace ("" for all namespaces).
func (r *resourceCache) each(namespace string, fn func(*entry)) {
	if namespace != "" {
		for _, e := range r.objects[namespace] {
			fn(e)
		}
		return
	}
	for _, byName := range r.objects {
		for _, e := range byName {
			fn(e)
		}
	}
}

// inScope says whether e falls in a scope (namespace and selectors).
func inScope(scope Scope, sel parsedSelectors, e *entry, f *entryFields) bool {
	if scope.Namespace != "" && e.namespace != scope.Namespace {
		return false
	}
	return sel.matches(e, f)
}

// newerRV says whether resourceVersion a is newer than b. resourceVersions
// are opaque to clients, but the apiserver's are etcd revisions: decimal
// integers that grow. Anything else is never "newer".
func newerRV(a, b string) bool {
	x, err := strconv.ParseUint(a, 10, 64)
	if err != nil {
		return false
	}
	if b == "" {
		return true
	}
	y, err := strconv.ParseUint(b, 10, 64)
	if err != nil {
		return false
	}
	return x > y
}
