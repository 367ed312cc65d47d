// Package version reports which edgeadm this is and what it was built from.
//
// The variables below are stamped at build time, for example:
//
//	go build -ldflags "\
//	  -X github.com/edgeadm/edgeadm/pkg/version.Version=v0.1.0 \
//	  -X github.com/edgeadm/edgeadm/pkg/version.GitCommit=$(git rev-parse HEAD) \
//	  -X github.com/edgeadm/edgeadm/pkg/version.KubernetesVersion=v1.37.1" ./cmd/edgeadm
//
// Any left empty is taken from the build information the Go toolchain embeds
// in the binary (runtime/debug.ReadBuildInfo), so a plain `go build` or
// `go install` still reports something true.
package version

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"
)

// Set with -ldflags -X at build time; see the package documentation.
var (
	// Version is edgeadm's own version, such as v0.1.0.
	Version = ""
	// GitCommit is the commit edgeadm was built from.
	GitCommit = ""
	// KubernetesVersion is the version of the k8s.io/kubernetes library
	// (kubeadm) edgeadm is built against, such as v1.37.1.
	KubernetesVersion = ""
)

// Placeholders for what neither -ldflags nor the build information tell.
const (
	DevelVersion = "v0.0.0-devel"
	Unknown      = "unknown"
)

// Info is what `edgeadm version -o json|yaml` prints.
type Info struct {
	Version           string `json:"version"`
	GitCommit         string `json:"gitCommit"`
	KubernetesVersion string `json:"kubernetesVersion"`
	GoVersion         string `json:"goVersion"`
	Platform          string `json:"platform"`
}

// String is the short human form: one line.
func (i Info) String() string {
	return fmt.Sprintf("edgeadm %s (commit %s) kubernetes %s %s %s",
		i.Version, i.GitCommit, i.KubernetesVersion, i.GoVersion, i.Platform)
}

// Get returns the version of the running binary.
func Get() Info {
	bi, _ := debug.ReadBuildInfo()
	return get(Version, GitCommit, KubernetesVersion, bi)
}

// get prefers the values stamped with -ldflags and falls back to bi, which
// may be nil.
func get(version, commit, kubeVersion string, bi *debug.BuildInfo) Info {
	if version == "" {
		version = mainVersion(bi)
	}
	if commit == "" {
		commit = vcsRevision(bi)
	}
	if kubeVersion == "" {
		kubeVersion = kubernetesVersion(bi)
	}
	return Info{
		Version:           version,
		GitCommit:         commit,
		KubernetesVersion: kubeVersion,
		GoVersion:         runtime.Version(),
		Platform:          runtime.GOOS + "/" + runtime.GOARCH,
	}
}

func mainVersion(bi *debug.BuildInfo) string {
	if bi != nil && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return DevelVersion
}

func vcsRevision(bi *debug.BuildInfo) string {
	if bi == nil {
		return Unknown
	}
	var rev, modified string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			modified = s.Value
		}
	}
	if rev == "" {
		return Unknown
	}
	if modified == "true" {
		rev += "-dirty"
	}
	return rev
}

// kubernetesVersion reads the k8s.io/kubernetes module version from bi. A
// binary that links none of its packages still links client-go, whose
// v0.X.Y is released with Kubernetes v1.X.Y, so that is the second source.
func kubernetesVersion(bi *debug.BuildInfo) string {
	if bi == nil {
		return Unknown
	}
	var fromClientGo string
	for _, dep := range bi.Deps {
		v := moduleVersion(dep)
		switch dep.Path {
		case "k8s.io/kubernetes":
			if strings.HasPrefix(v, "v1.") {
				return v
			}
		case "k8s.io/client-go":
			if strings.HasPrefix(v, "v0.") {
				fromClientGo = "v1." + strings.TrimPrefix(v, "v0.")
			}
		}
	}
	if fromClientGo != "" {
		return fromClientGo
	}
	return Unknown
}

// moduleVersion is the version actually built: a replace directive's, if any.
func moduleVersion(m *debug.Module) string {
	if m.Replace != nil && m.Replace.Version != "" {
		return m.Replace.Version
	}
	return m.Version
}
