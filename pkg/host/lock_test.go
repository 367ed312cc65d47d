package host

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestLockMachineIsExclusive(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "var/lib"), 0o755); err != nil {
		t.Fatal(err)
	}
	p := DefaultPaths(root)
	unlock, err := LockMachine(p)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := LockMachine(p); !errors.Is(err, ErrLocked) {
		t.Fatalf("second lock: %v, want ErrLocked", err)
	}
	unlock()
	unlock2, err := LockMachine(p)
	if err != nil {
		t.Fatalf("after unlock: %v", err)
	}
	unlock2()
	if entries, _ := os.ReadDir(filepath.Join(root, "var/lib")); len(entries) != 0 {
		t.Fatalf("the lock created files: %v", entries)
	}
}
