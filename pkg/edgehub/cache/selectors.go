package cache

import (
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// labelPairs holds an object's labels as key, value, key, value, ...: a few
// labels in one slice cost less memory than a map and are searched as fast.
type labelPairs []string

var _ labels.Labels = labelPairs(nil)

func (l labelPairs) Lookup(key string) (string, bool) {
	for i := 0; i+1 < len(l); i += 2 {
		if l[i] == key {
			return l[i+1], true
		}
	}
	return "", false
}

func (l labelPairs) Has(key string) bool {
	_, ok := l.Lookup(key)
	return ok
}

func (l labelPairs) Get(key string) string {
	v, _ := l.Lookup(key)
	return v
}

// fieldRule says how the apiserver computes one selectable field that is
// not simply the JSON value at the field's dotted path: its fields.Set is
// filled from Go structs (pkg/registry/.../strategy.go), so an unset bool
// reads "false", an unset counter "0", and a few names are aliases.
type fieldRule struct {
	paths []string // JSON paths tried in order; the first non-empty value wins
	def   string   // value when all are empty
}

type fieldRuleKey struct {
	group, resource, field string
}

var fieldRules = map[fieldRuleKey]fieldRule{
	{"", "pods", "spec.hostNetwork"}:                  {paths: []string{"spec.hostNetwork"}, def: "false"},
	{"", "nodes", "spec.unschedulable"}:               {paths: []string{"spec.unschedulable"}, def: "false"},
	{"", "events", "source"}:                          {paths: []string{"source.component", "reportingComponent"}},
	{"", "replicationcontrollers", "status.replicas"}: {paths: []string{"status.replicas"}, def: "0"},
	{"apps", "replicasets", "status.replicas"}:        {paths: []string{"status.replicas"}, def: "0"},
	{"batch", "jobs", "status.successful"}:            {paths: []string{"status.succeeded"}, def: "0"},
	{"", "namespaces", "name"}:                        {paths: []string{"metadata.name"}},
	{"", "persistentvolumes", "name"}:                 {paths: []string{"metadata.name"}},
	{"", "persistentvolumeclaims", "name"}:            {paths: []string{"metadata.name"}},
}

// ruleFor returns how to compute field for gvr: a rule from the table, or
// the JSON value at the field's dotted path.
func ruleFor(gvr schema.GroupVersionResource, field string) fieldRule {
	if r, ok := fieldRules[fieldRuleKey{gvr.Group, gvr.Resource, field}]; ok {
		return r
	}
	return fieldRule{paths: []string{field}}
}

func splitPath(p string) []string { return strings.Split(p, ".") }

// parsedSelectors are a scope's selectors, parsed once.
type parsedSelectors struct {
	labels labels.Selector
	fields fields.Selector
	// fieldNames are the fields the field selector tests.
	fieldNames []string
}

func parseSelectors(scope Scope) (parsedSelectors, error) {
	ls, err := labels.Parse(scope.LabelSelector)
	if err != nil {
		return parsedSelectors{}, fmt.Errorf("label selector %q: %w", scope.LabelSelector, err)
	}
	fs, err := fields.ParseSelector(scope.FieldSelector)
	if err != nil {
		return parsedSelectors{}, fmt.Errorf("field selector %q: %w", scope.FieldSelector, err)
	}
	p := parsedSelectors{labels: ls, fields: fs}
	seen := map[string]bool{}
	for _, r := range fs.Requirements() {
		if !seen[r.Field] {
			seen[r.Field] = true
			p.fieldNames = append(p.fieldNames, r.Field)
		}
	}
	return p, nil
}

// entryFields presents one entry's selectable fields to fields.Selector, so
// matching is the apiserver's own code (fields.Set semantics: a field the
// object lacks reads "").
type entryFields struct {
	e    *entry
	cols []fieldColumn // only the fields the selector tests
	// slow holds values computed per request for fields the resource does
	// not index (see resourceCache.maxIndexedFields).
	slow map[string]string
}

// fieldColumn maps a selector field to the entry's index of its value.
type fieldColumn struct {
	field string
	index int
}

var _ fields.Fields = (*entryFields)(nil)

func (f *entryFields) Has(field string) bool {
	_, ok := f.lookup(field)
	return ok
}

func (f *entryFields) Get(field string) string {
	v, _ := f.lookup(field)
	return v
}

func (f *entryFields) lookup(field string) (string, bool) {
	switch field {
	case "metadata.name":
		return f.e.name, true
	case "metadata.namespace":
		return f.e.namespace, true
	}
	for _, c := range f.cols {
		if c.field == field {
			return f.e.fields[c.index], true
		}
	}
	if v, ok := f.slow[field]; ok {
		return v, true
	}
	return "", false
}

func (p parsedSelectors) matches(e *entry, f *entryFields) bool {
	// &e.labels: a pointer converts to labels.Labels without allocating.
	if !p.labels.Empty() && !p.labels.Matches(&e.labels) {
		return false
	}
	if p.fields.Empty() {
		return true
	}
	f.e = e
	return p.fields.Matches(f)
}
