package cache

import (
	"encoding/json"
	"errors"
	"fmt"
)

// The store indexes a few values of every object when it is written (name,
// namespace, resourceVersion, labels, the field paths selectors use) so that
// an offline LIST never decodes JSON. Decoding a 4 KB pod into
// map[string]any costs tens of microseconds and many allocations; this
// scanner walks the bytes once, descends only into the keys a plan asks
// for, and skips everything else without allocating.
//
// It trusts its input to be valid JSON (Put and ReplaceList check with
// json.Valid, records on disk carry a CRC) but never reads out of bounds:
// malformed input gives an error, not a panic.

// Fixed slots every plan fills; field paths come after them.
const (
	slotName = iota
	slotNamespace
	slotResourceVersion
	slotKind
	slotAPIVersion
	firstFieldSlot
)

// maxScanDepth bounds recursion into wanted keys (skipped subtrees do not
// recurse at all); deeper wanted values read as unset.
const maxScanDepth = 64

// planNode is one level of the set of JSON paths to extract.
type planNode struct {
	children map[string]*planNode
	slot     int  // index into scanResult.values, -1 when only a prefix
	labels   bool // collect this object's string members (metadata.labels)
}

func newPlanNode() *planNode { return &planNode{slot: -1} }

// scanPlan is immutable once built: a resource swaps in a new plan when
// its indexed field paths change.
type scanPlan struct {
	root  *planNode
	slots int
}

// newScanPlan builds a plan for the fixed slots plus jsonPaths (each a list
// of keys), which get slots firstFieldSlot, firstFieldSlot+1, ...
func newScanPlan(jsonPaths [][]string) *scanPlan {
	p := &scanPlan{root: newPlanNode()}
	add := func(keys []string) *planNode {
		n := p.root
		for _, k := range keys {
			c := n.children[k]
			if c == nil {
				if n.children == nil {
					n.children = map[string]*planNode{}
				}
				c = newPlanNode()
				n.children[k] = c
			}
			n = c
		}
		return n
	}
	fixed := [][]string{{"metadata", "name"}, {"metadata", "namespace"}, {"metadata", "resourceVersion"}, {"kind"}, {"apiVersion"}}
	for i, keys := range fixed {
		add(keys).slot = i
	}
	add([]string{"metadata", "labels"}).labels = true
	p.slots = firstFieldSlot
	for _, keys := range jsonPaths {
		n := add(keys)
		if n.slot < 0 {
			n.slot = p.slots
			p.slots++
		}
	}
	return p
}

// slotOf returns the slot of a path added to the plan.
func (p *scanPlan) slotOf(keys []string) int {
	n := p.root
	for _, k := range keys {
		n = n.children[k]
		if n == nil {
			return -1
		}
	}
	return n.slot
}

// scanResult is what a scan extracted. Missing values are "".
type scanResult struct {
	values []string
	labels labelPairs
}

type scanner struct {
	b   []byte
	i   int
	res *scanResult
}

var errTruncated = errors.New("unexpected end of JSON")

// scan extracts what plan asks for from one JSON object.
func scan(doc []byte, plan *scanPlan) (scanResult, error) {
	res := scanResult{values: make([]string, plan.slots)}
	s := scanner{b: doc, res: &res}
	s.ws()
	if s.i >= len(s.b) || s.b[s.i] != '{' {
		return res, fmt.Errorf("not a JSON object")
	}
	if err := s.value(plan.root, 0); err != nil {
		return res, fmt.Errorf("JSON at offset %d: %w", s.i, err)
	}
	return res, nil
}

func (s *scanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// value reads the value at s.i into node's slot (scalars), or descends into
// it (objects the plan names members of); everything else is skipped.
func (s *scanner) value(n *planNode, depth int) error {
	if n == nil {
		return s.skip()
	}
	if s.i >= len(s.b) {
		return errTruncated
	}
	switch c := s.b[s.i]; {
	case c == '{':
		if n.children == nil && !n.labels {
			return s.skip()
		}
		if depth >= maxScanDepth {
			// A field path this deep reads as unset rather than failing
			// the object: a client asking for an absurd field cannot
			// make objects uncacheable.
			return s.skip()
		}
		return s.object(n, depth)
	case c == '"':
		str, err := s.str()
		if err != nil {
			return err
		}
		if n.slot >= 0 {
			s.res.values[n.slot] = str
		}
		return nil
	case c == '[':
		return s.skip()
	default:
		// true, false, null or a number: the field selector compares
		// their text (null is "", as an unset Go field would be).
		start := s.i
		if err := s.skip(); err != nil {
			return err
		}
		if n.slot >= 0 {
			if lit := string(s.b[start:s.i]); lit != "null" {
				s.res.values[n.slot] = lit
			}
		}
		return nil
	}
}

func (s *scanner) object(n *planNode, depth int) error {
	s.i++ // '{'
	for first := true; ; first = false {
		s.ws()
		if s.i >= len(s.b) {
			return errTruncated
		}
		if s.b[s.i] == '}' {
			s.i++
			return nil
		}
		if !first {
			if s.b[s.i] != ',' {
				return fmt.Errorf("expected ',' or '}' in object, found %q", s.b[s.i])
			}
			s.i++
			s.ws()
		}
		key, err := s.keyBytes()
		if err != nil {
			return err
		}
		s.ws()
		if s.i >= len(s.b) || s.b[s.i] != ':' {
			return errors.New("expected ':' after object key")
		}
		s.i++
		s.ws()
		if n.labels {
			if s.i < len(s.b) && s.b[s.i] == '"' {
				v, err := s.str()
				if err != nil {
					return err
				}
				s.res.labels = append(s.res.labels, unescapeKey(key), v)
				continue
			}
			if err := s.skip(); err != nil {
				return err
			}
			continue
		}
		// A map lookup with string(bytes) does not allocate. Keys with
		// escapes never match: no Kubernetes field name has one.
		if err := s.value(n.children[string(key[1:len(key)-1])], depth+1); err != nil {
			return err
		}
	}
}

// keyBytes returns an object key as it appears between its quotes (escapes
// are rare in keys; unescapeKey resolves them where a key is kept).
func (s *scanner) keyBytes() ([]byte, error) {
	if s.i >= len(s.b) || s.b[s.i] != '"' {
		return nil, errors.New("expected a string as object key")
	}
	start := s.i
	if err := s.skipString(); err != nil {
		return nil, err
	}
	return s.b[start:s.i], nil
}

// unescapeKey turns a quoted key from keyBytes into a string.
func unescapeKey(quoted []byte) string {
	inner := quoted[1 : len(quoted)-1]
	for _, c := range inner {
		if c == '\\' {
			var out string
			if json.Unmarshal(quoted, &out) == nil {
				return out
			}
			break
		}
	}
	return string(inner)
}

// str reads a JSON string and returns its value.
func (s *scanner) str() (string, error) {
	start := s.i
	escaped, err := s.skipStringEscaped()
	if err != nil {
		return "", err
	}
	if !escaped {
		return string(s.b[start+1 : s.i-1]), nil
	}
	var out string
	if err := json.Unmarshal(s.b[start:s.i], &out); err != nil {
		return "", fmt.Errorf("bad JSON string: %w", err)
	}
	return out, nil
}

func (s *scanner) skipString() error {
	_, err := s.skipStringEscaped()
	return err
}

// skipStringEscaped moves past the string starting at s.i ('"') and says
// whether it contained escapes.
func (s *scanner) skipStringEscaped() (bool, error) {
	escaped := false
	for s.i++; s.i < len(s.b); s.i++ {
		switch s.b[s.i] {
		case '\\':
			escaped = true
			s.i++
		case '"':
			s.i++
			return escaped, nil
		}
	}
	return escaped, errTruncated
}

// skip moves past one value without looking inside it.
func (s *scanner) skip() error {
	if s.i >= len(s.b) {
		return errTruncated
	}
	switch s.b[s.i] {
	case '"':
		return s.skipString()
	case '{', '[':
		depth := 0
		for s.i < len(s.b) {
			switch s.b[s.i] {
			case '"':
				if err := s.skipString(); err != nil {
					return err
				}
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					s.i++
					return nil
				}
			}
			s.i++
		}
		return errTruncated
	default:
		start := s.i
		for s.i < len(s.b) {
			switch s.b[s.i] {
			case ',', '}', ']', ' ', '\t', '\n', '\r':
				if s.i == start {
					return fmt.Errorf("unexpected %q", s.b[s.i])
				}
				return nil
			}
			s.i++
		}
		if s.i == start {
			return errTruncated
		}
		return nil
	}
}
