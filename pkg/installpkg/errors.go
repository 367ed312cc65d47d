package installpkg

import "errors"

// Error classes of Open and its steps; match them with errors.Is. The wrapping error
// names the file, the source (redacted) and the fix.
var (
	// ErrSource: --install-pkg-path is not one of the accepted forms.
	ErrSource = errors.New("unsupported install package source")
	// ErrNotFound: the archive does not exist at the source (local path, FTP 550, HTTP 404).
	ErrNotFound = errors.New("install package not found")
	// ErrAuth: the server refused the credentials (FTP 530, HTTP 401/403).
	ErrAuth = errors.New("login refused")
	// ErrUnreachable: the server could not be reached or stopped answering.
	ErrUnreachable = errors.New("server unreachable")
	// ErrChecksum: the archive does not match --install-pkg-sha256.
	ErrChecksum = errors.New("install package checksum mismatch")
	// ErrCorrupt: the archive is not a readable gzip-compressed tar.
	ErrCorrupt = errors.New("install package is corrupt")
	// ErrUnsafe: an entry would escape the target or is of a refused kind.
	ErrUnsafe = errors.New("unsafe entry in install package")
	// ErrTooLarge: the archive or an entry exceeds a size limit.
	ErrTooLarge = errors.New("install package too large")
	// ErrManifest: manifest.json is missing or invalid, or a file disagrees with it.
	ErrManifest = errors.New("install package does not match its manifest")
	// ErrFormat: the package's formatVersion is not one this edgeadm knows.
	ErrFormat = errors.New("unknown install package format")
	// ErrArch: the package is built for another architecture than the host's.
	ErrArch = errors.New("install package is for another architecture")
)
