package exitcode

import (
	"errors"
	"fmt"
	"testing"
)

func TestCode(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want int
	}{
		{"nil", nil, OK},
		{"plain error", errors.New("boom"), Failure},
		{"usage", New(Usage, errors.New("bad flag")), Usage},
		{"wrapped not implemented", fmt.Errorf("join: %w", New(NotImplemented, errors.New("x"))), NotImplemented},
		{"outermost code wins", New(Refused, New(Failure, errors.New("x"))), Refused},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Code(tt.err); got != tt.want {
				t.Errorf("Code(%v) = %d, want %d", tt.err, got, tt.want)
			}
		})
	}
}

func TestNewKeepsMessageAndChain(t *testing.T) {
	base := errors.New("base")
	err := New(Usage, base)
	if err.Error() != "base" {
		t.Errorf("Error() = %q, want %q", err.Error(), "base")
	}
	if !errors.Is(err, base) {
		t.Error("errors.Is(New(code, base), base) = false, want true")
	}
	if New(Usage, nil) != nil {
		t.Error("New(code, nil) != nil")
	}
}
