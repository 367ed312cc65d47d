package host

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

// ErrLocked means another edgeadm join or reset holds the machine.
var ErrLocked = errors.New("another edgeadm join or reset is running on this host")

// LockMachine takes an exclusive advisory lock that only one edgeadm join or
// reset at a time can hold, so that two never write the same journal. The
// lock is a flock(2) on the /var/lib directory (under p.Root): nothing is
// created, and the kernel releases it when the process ends, however it ends.
func LockMachine(p Paths) (unlock func(), err error) {
	dir := p.Abs("/var/lib")
	f, err := os.Open(dir)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", dir, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w: wait for it to end, then run this again", ErrLocked)
		}
		return nil, fmt.Errorf("lock %s: %w", dir, err)
	}
	return func() { _ = f.Close() }, nil
}
