package host

import (
	"bytes"
	"fmt"
)

// Marker is the pair of lines that fence a block edgeadm owns in a text file
// somebody else owns, such as /etc/hosts.
type Marker struct {
	Begin string
	End   string
}

// HostsMarker fences edgeadm's lines in /etc/hosts.
var HostsMarker = Marker{Begin: "# BEGIN edgeadm", End: "# END edgeadm"}

// Block is where a marked block sits in a file: data[Start:End] is the block,
// marker lines included, with the END line's newline when it has one.
type Block struct {
	Start, End int
	// Content is what is between the marker lines.
	Content []byte
}

// FindBlock finds m's block in data. A file with a BEGIN and no END, an END
// with no BEGIN, or two blocks is malformed: edgeadm will not guess which
// lines are its own.
func FindBlock(data []byte, m Marker) (Block, bool, error) {
	var (
		b     Block
		open  = -1 // offset of the BEGIN line while inside a block
		found bool
	)
	for off := 0; off < len(data); {
		next := bytes.IndexByte(data[off:], '\n')
		lineEnd := len(data)
		if next >= 0 {
			lineEnd = off + next + 1
		}
		line := bytes.TrimRight(data[off:lineEnd], "\r\n")
		switch string(line) {
		case m.Begin:
			if open >= 0 {
				return Block{}, false, fmt.Errorf("%q appears twice before %q", m.Begin, m.End)
			}
			if found {
				return Block{}, false, fmt.Errorf("more than one %q block", m.Begin)
			}
			open = off
		case m.End:
			if open < 0 {
				return Block{}, false, fmt.Errorf("%q without %q before it", m.End, m.Begin)
			}
			beginEnd := open + bytes.IndexByte(data[open:], '\n') + 1
			b = Block{Start: open, End: lineEnd, Content: data[beginEnd:off]}
			open = -1
			found = true
		}
		off = lineEnd
	}
	if open >= 0 {
		return Block{}, false, fmt.Errorf("%q without %q after it", m.Begin, m.End)
	}
	return b, found, nil
}

// SetBlockBytes returns data with m's block holding content: replaced in
// place when there is one, appended otherwise. Every byte outside the block
// is kept. When data is not empty and does not end with a newline, one is
// added before an appended block, and addedNewline says so, so that
// RemoveBlockBytes can take exactly that byte away again.
func SetBlockBytes(data []byte, m Marker, content []byte) (out []byte, addedNewline bool, err error) {
	if err := checkBlockContent(content, m); err != nil {
		return nil, false, err
	}
	if len(content) > 0 && content[len(content)-1] != '\n' {
		content = append(append([]byte{}, content...), '\n')
	}
	b, found, err := FindBlock(data, m)
	if err != nil {
		return nil, false, err
	}
	var block bytes.Buffer
	block.WriteString(m.Begin + "\n")
	block.Write(content)
	block.WriteString(m.End + "\n")
	if found {
		newBlock := block.Bytes()
		if data[b.End-1] != '\n' { // the END line was the last, without a newline: keep it so
			newBlock = newBlock[:len(newBlock)-1]
		}
		out = make([]byte, 0, len(data)-(b.End-b.Start)+len(newBlock))
		out = append(out, data[:b.Start]...)
		out = append(out, newBlock...)
		return append(out, data[b.End:]...), false, nil
	}
	out = make([]byte, 0, len(data)+1+block.Len())
	out = append(out, data...)
	if len(data) > 0 && data[len(data)-1] != '\n' {
		out = append(out, '\n')
		addedNewline = true
	}
	return append(out, block.Bytes()...), addedNewline, nil
}

// RemoveBlockBytes returns data without m's block. addedNewline is what
// SetBlockBytes reported when it appended the block: the newline it added is
// removed too, as long as the block is still the end of the file.
func RemoveBlockBytes(data []byte, m Marker, addedNewline bool) (out []byte, found bool, err error) {
	b, found, err := FindBlock(data, m)
	if err != nil || !found {
		return data, false, err
	}
	start := b.Start
	if addedNewline && b.End == len(data) && start > 0 && data[start-1] == '\n' {
		start--
	}
	out = make([]byte, 0, len(data)-(b.End-start))
	out = append(out, data[:start]...)
	return append(out, data[b.End:]...), true, nil
}

func checkBlockContent(content []byte, m Marker) error {
	for _, line := range bytes.Split(content, []byte("\n")) {
		l := string(bytes.TrimRight(line, "\r"))
		if l == m.Begin || l == m.End {
			return fmt.Errorf("block content must not contain the marker line %q", l)
		}
	}
	return nil
}
