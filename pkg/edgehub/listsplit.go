package edgehub

import (
	"bytes"
	"encoding/json"
	"errors"
)

// listItems returns a LIST answer's items (and its head). head and itemsAt
// come from readListHeadAt. When the answer is laid out as the apiserver
// writes it (kind, apiVersion and metadata before items, nothing after
// them) the items are cut out of body in one pass, without decoding them:
// the store validates every item anyway, and encoding/json would read the
// whole list twice. Any other layout is decoded with encoding/json. Items
// share body's memory.
func listItems(body []byte, head objectHead, itemsAt int) (objectHead, [][]byte, error) {
	if itemsAt > 0 {
		if items, ok := cutItems(body[itemsAt:]); ok {
			return head, items, nil
		}
	}
	var l listBody
	if err := json.Unmarshal(body, &l); err != nil {
		return head, nil, err
	}
	items := make([][]byte, len(l.Items))
	for i, it := range l.Items {
		items[i] = it
	}
	return l.objectHead, items, nil
}

// cutItems splits `: [ item, item ] }` (the rest of a LIST answer after its
// "items" key) into the items. ok is false unless the input has exactly
// that shape, strings and nesting balanced, with only whitespace after
// the closing brace.
func cutItems(b []byte) (items [][]byte, ok bool) {
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != ':' {
		return nil, false
	}
	i = skipSpace(b, i+1)
	if bytes.HasPrefix(b[i:], []byte("null")) {
		i += len("null")
	} else {
		if i >= len(b) || b[i] != '[' {
			return nil, false
		}
		var err error
		if items, i, err = cutArray(b, i); err != nil {
			return nil, false
		}
	}
	i = skipSpace(b, i)
	if i >= len(b) || b[i] != '}' {
		return nil, false // more members after items: let encoding/json read them
	}
	if skipSpace(b, i+1) != len(b) {
		return nil, false
	}
	return items, true
}

var errUnbalanced = errors.New("unbalanced JSON array")

// cutArray splits the array starting at b[start] == '[' into its elements
// (trimmed), returning the offset just past its closing bracket.
func cutArray(b []byte, start int) ([][]byte, int, error) {
	var items [][]byte
	depth := 0
	inString := false
	itemStart := start + 1
	for i := start; i < len(b); i++ {
		c := b[i]
		if inString {
			switch c {
			case '\\':
				i++
			case '"':
				inString = false
			}
			continue
		}
		switch c {
		case '"':
			inString = true
		case '{', '[':
			depth++
		case '}', ']':
			depth--
			if depth < 0 {
				return nil, 0, errUnbalanced
			}
			if depth == 0 {
				if c != ']' {
					return nil, 0, errUnbalanced
				}
				if it := bytes.TrimSpace(b[itemStart:i]); len(it) > 0 {
					items = append(items, it)
				} else if len(items) > 0 {
					return nil, 0, errUnbalanced // a trailing comma
				}
				return items, i + 1, nil
			}
		case ',':
			if depth == 1 {
				it := bytes.TrimSpace(b[itemStart:i])
				if len(it) == 0 {
					return nil, 0, errUnbalanced
				}
				items = append(items, it)
				itemStart = i + 1
			}
		}
	}
	return nil, 0, errUnbalanced
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}
