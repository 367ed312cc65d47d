package installpkg

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
)

// openLocal opens a local archive. It must be a regular file (not a directory, a fifo or
// a device, which could block or never end).
func openLocal(_ context.Context, s *Source, _ FetchOptions) (io.ReadCloser, int64, error) {
	f, err := os.Open(s.Path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, 0, fmt.Errorf("%w: %s: no such file (install package sources: %s)", ErrNotFound, s.Path, AcceptedForms)
	}
	if err != nil {
		return nil, 0, fmt.Errorf("opening install package: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, fmt.Errorf("opening install package: %w", err)
	}
	if !st.Mode().IsRegular() {
		f.Close()
		return nil, 0, fmt.Errorf("%w: %s is a %s, not a file; give the path of kube-linux-<arch>-v<k8s>.tar.gz",
			ErrSource, s.Path, fileKind(st.Mode()))
	}
	return f, st.Size(), nil
}

func fileKind(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "directory"
	case m&fs.ModeSymlink != 0:
		return "symlink"
	case m&fs.ModeNamedPipe != 0:
		return "fifo"
	case m&fs.ModeSocket != 0:
		return "socket"
	case m&fs.ModeDevice != 0:
		return "device"
	}
	return "special file"
}
