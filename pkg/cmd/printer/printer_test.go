package printer

import (
	"bytes"
	"strings"
	"testing"
)

type sample struct {
	Name  string `json:"name"`
	Count int    `json:"count"`
}

func TestPrint(t *testing.T) {
	tests := []struct {
		format string
		want   string
	}{
		{JSON, "{\n  \"name\": \"a\",\n  \"count\": 2\n}\n"},
		{YAML, "count: 2\nname: a\n"},
	}
	for _, tt := range tests {
		t.Run(tt.format, func(t *testing.T) {
			p, err := New(tt.format)
			if err != nil {
				t.Fatalf("New(%q): %v", tt.format, err)
			}
			var buf bytes.Buffer
			if err := p.Print(&buf, sample{Name: "a", Count: 2}); err != nil {
				t.Fatalf("Print: %v", err)
			}
			if buf.String() != tt.want {
				t.Errorf("Print = %q, want %q", buf.String(), tt.want)
			}
		})
	}
}

func TestNewRejectsUnknownFormats(t *testing.T) {
	for _, format := range []string{"", "xml", "JSON", "wide"} {
		_, err := New(format)
		if err == nil {
			t.Errorf("New(%q) = nil error, want one", format)
			continue
		}
		if !strings.Contains(err.Error(), "use one of: json, yaml") {
			t.Errorf("New(%q) error %q does not name the valid formats", format, err)
		}
	}
}
