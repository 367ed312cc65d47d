package host

import (
	"bytes"
	"strings"
	"testing"
)

// Odd /etc/hosts files: the block must go in and come out leaving every
// other byte exactly as it was.
var oddFiles = map[string]string{
	"empty":                      "",
	"ordinary":                   "127.0.0.1 localhost\n::1 localhost\n",
	"no trailing newline":        "127.0.0.1 localhost\n10.0.0.1 db",
	"only a newline":             "\n",
	"only spaces, no newline":    "   ",
	"CRLF line ends":             "127.0.0.1 localhost\r\n10.0.0.1 db\r\n",
	"CRLF, no trailing newline":  "127.0.0.1 localhost\r\n10.0.0.1 db",
	"trailing blank lines":       "127.0.0.1 localhost\n\n\n",
	"tabs and comments":          "# hosts\n127.0.0.1\tlocalhost\t# me\n\t\n",
	"marker-like but not equal":  "# BEGIN edgeadm-other\n#  END edgeadm\n# BEGIN edgeadm \n",
	"non UTF-8 bytes":            "127.0.0.1 \xff\xfe caf\xe9\n",
	"NUL byte, no newline":       "127.0.0.1 a\x00b",
	"very long line":             strings.Repeat("x", 70000) + "\n",
	"kubernetes.default already": "10.9.9.9 kubernetes.default\n",
}

func TestBlockRoundTripKeepsEveryByte(t *testing.T) {
	content := []byte("198.18.1.2 kubernetes.default\n")
	for name, orig := range oddFiles {
		t.Run(name, func(t *testing.T) {
			data := []byte(orig)
			withBlock, added, err := SetBlockBytes(data, HostsMarker, content)
			if err != nil {
				t.Fatalf("SetBlockBytes: %v", err)
			}
			if !bytes.HasPrefix(withBlock, data) {
				t.Fatalf("the original bytes are not kept in front: %q", withBlock)
			}
			b, found, err := FindBlock(withBlock, HostsMarker)
			if err != nil || !found || !bytes.Equal(b.Content, content) {
				t.Fatalf("FindBlock = %q, %v, %v; want the content", b.Content, found, err)
			}
			if added != (len(data) > 0 && data[len(data)-1] != '\n') {
				t.Fatalf("addedNewline = %v for %q", added, orig)
			}
			// Setting the same content again changes nothing.
			again, _, err := SetBlockBytes(withBlock, HostsMarker, content)
			if err != nil || !bytes.Equal(again, withBlock) {
				t.Fatalf("second SetBlockBytes changed the file: %q, %v", again, err)
			}
			back, found, err := RemoveBlockBytes(withBlock, HostsMarker, added)
			if err != nil || !found {
				t.Fatalf("RemoveBlockBytes: found=%v err=%v", found, err)
			}
			if !bytes.Equal(back, data) {
				t.Fatalf("after removal:\n got %q\nwant %q", back, data)
			}
		})
	}
}

func TestBlockReplacedInPlaceKeepsWhatUserAddedAround(t *testing.T) {
	data := []byte("a\n# BEGIN edgeadm\n1.1.1.1 kubernetes.default\n# END edgeadm\nuser line after\n")
	out, added, err := SetBlockBytes(data, HostsMarker, []byte("2.2.2.2 kubernetes.default"))
	if err != nil || added {
		t.Fatalf("SetBlockBytes: added=%v err=%v", added, err)
	}
	want := "a\n# BEGIN edgeadm\n2.2.2.2 kubernetes.default\n# END edgeadm\nuser line after\n"
	if string(out) != want {
		t.Fatalf("got %q, want %q", out, want)
	}
	// Removal with addedNewline set must not eat a byte when the block is
	// not at the end any more.
	back, _, err := RemoveBlockBytes(out, HostsMarker, true)
	if err != nil || string(back) != "a\nuser line after\n" {
		t.Fatalf("RemoveBlockBytes = %q, %v", back, err)
	}
}

func TestBlockEndWithoutNewlineAtEOF(t *testing.T) {
	data := []byte("a\n# BEGIN edgeadm\nx\n# END edgeadm")
	out, _, err := SetBlockBytes(data, HostsMarker, []byte("y\n"))
	if err != nil || string(out) != "a\n# BEGIN edgeadm\ny\n# END edgeadm" {
		t.Fatalf("got %q, %v", out, err)
	}
	back, found, err := RemoveBlockBytes(out, HostsMarker, false)
	if err != nil || !found || string(back) != "a\n" {
		t.Fatalf("got %q, %v, %v", back, found, err)
	}
}

func TestBlockMalformedIsRefused(t *testing.T) {
	for name, data := range map[string]string{
		"begin without end":  "# BEGIN edgeadm\nx\n",
		"end without begin":  "x\n# END edgeadm\n",
		"nested begin":       "# BEGIN edgeadm\n# BEGIN edgeadm\n# END edgeadm\n",
		"two blocks":         "# BEGIN edgeadm\n# END edgeadm\n# BEGIN edgeadm\n# END edgeadm\n",
		"end before a begin": "# END edgeadm\n# BEGIN edgeadm\n",
	} {
		t.Run(name, func(t *testing.T) {
			if _, _, err := SetBlockBytes([]byte(data), HostsMarker, []byte("x\n")); err == nil {
				t.Fatal("SetBlockBytes accepted a malformed file")
			}
			if _, _, err := RemoveBlockBytes([]byte(data), HostsMarker, false); err == nil {
				t.Fatal("RemoveBlockBytes accepted a malformed file")
			}
		})
	}
}

func TestBlockContentWithMarkerRefused(t *testing.T) {
	if _, _, err := SetBlockBytes(nil, HostsMarker, []byte("x\n# END edgeadm\n")); err == nil {
		t.Fatal("content holding a marker line was accepted")
	}
}

func TestRemoveBlockWithoutBlockChangesNothing(t *testing.T) {
	for name, orig := range oddFiles {
		out, found, err := RemoveBlockBytes([]byte(orig), HostsMarker, true)
		if err != nil || found || string(out) != orig {
			t.Errorf("%s: RemoveBlockBytes = %q, %v, %v", name, out, found, err)
		}
	}
}
