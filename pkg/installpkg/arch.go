package installpkg

import (
	"runtime"
	"strings"

	"golang.org/x/sys/unix"
)

// archAliases maps what uname -m, Debian and Go call an architecture to Go's name, which
// is what package names and manifest.json use.
var archAliases = map[string]string{
	"amd64": "amd64", "x86_64": "amd64", "x86-64": "amd64", "x64": "amd64",
	"arm64": "arm64", "aarch64": "arm64", "armv8": "arm64", "armv8l": "arm64",
	"arm": "arm", "armhf": "arm", "armv7": "arm", "armv7l": "arm",
	"386": "386", "i386": "386", "i686": "386",
	"ppc64le": "ppc64le", "ppc64el": "ppc64le",
	"s390x":   "s390x",
	"riscv64": "riscv64",
}

// NormalizeArch returns Go's name for an architecture name (x86_64 -> amd64,
// aarch64 -> arm64), and false for one it does not know.
func NormalizeArch(name string) (string, bool) {
	a, ok := archAliases[strings.ToLower(strings.TrimSpace(name))]
	return a, ok
}

// HostArch is the architecture binaries must be built for to run natively here: the
// kernel's (uname -m), which stays right when edgeadm itself runs emulated. When uname
// names something unknown, edgeadm's own GOARCH is the answer.
func HostArch() (arch, machine string) {
	var u unix.Utsname
	if err := unix.Uname(&u); err == nil {
		machine = unix.ByteSliceToString(u.Machine[:])
		if a, ok := NormalizeArch(machine); ok {
			return a, machine
		}
	}
	return runtime.GOARCH, machine
}
