package version

import (
	"runtime"
	"runtime/debug"
	"testing"
)

func TestGet(t *testing.T) {
	platform := runtime.GOOS + "/" + runtime.GOARCH
	replaced := func(path, version, replaceVersion string) *debug.Module {
		return &debug.Module{Path: path, Version: version, Replace: &debug.Module{Path: path, Version: replaceVersion}}
	}
	tests := []struct {
		name                         string
		version, commit, kubeVersion string
		bi                           *debug.BuildInfo
		want                         Info
	}{
		{
			name:    "ldflags win over build info",
			version: "v0.1.0", commit: "abc123", kubeVersion: "v1.37.1",
			bi: &debug.BuildInfo{
				Main:     debug.Module{Version: "v9.9.9"},
				Deps:     []*debug.Module{{Path: "k8s.io/kubernetes", Version: "v1.1.1"}},
				Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "fff"}},
			},
			want: Info{Version: "v0.1.0", GitCommit: "abc123", KubernetesVersion: "v1.37.1"},
		},
		{
			name: "build info fills what ldflags left empty",
			bi: &debug.BuildInfo{
				Main: debug.Module{Version: "v0.2.0"},
				Deps: []*debug.Module{
					{Path: "k8s.io/client-go", Version: "v0.37.1"},
					{Path: "k8s.io/kubernetes", Version: "v1.37.1"},
				},
				Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "deadbeef"}, {Key: "vcs.modified", Value: "true"}},
			},
			want: Info{Version: "v0.2.0", GitCommit: "deadbeef-dirty", KubernetesVersion: "v1.37.1"},
		},
		{
			name: "client-go version when kubernetes is not linked, replace honoured",
			bi: &debug.BuildInfo{
				Main: debug.Module{Version: "(devel)"},
				Deps: []*debug.Module{replaced("k8s.io/client-go", "v0.0.0", "v0.37.1")},
			},
			want: Info{Version: DevelVersion, GitCommit: Unknown, KubernetesVersion: "v1.37.1"},
		},
		{
			name: "no build info",
			want: Info{Version: DevelVersion, GitCommit: Unknown, KubernetesVersion: Unknown},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.want.GoVersion = runtime.Version()
			tt.want.Platform = platform
			if got := get(tt.version, tt.commit, tt.kubeVersion, tt.bi); got != tt.want {
				t.Errorf("get() = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestGetUsesStampedVariables(t *testing.T) {
	defer func(v, c, k string) { Version, GitCommit, KubernetesVersion = v, c, k }(Version, GitCommit, KubernetesVersion)
	Version, GitCommit, KubernetesVersion = "v1.2.3", "cafe", "v1.37.1"
	got := Get()
	if got.Version != "v1.2.3" || got.GitCommit != "cafe" || got.KubernetesVersion != "v1.37.1" {
		t.Errorf("Get() = %+v, want the stamped values", got)
	}
}

func TestString(t *testing.T) {
	i := Info{Version: "v0.1.0", GitCommit: "abc", KubernetesVersion: "v1.37.1", GoVersion: "go1.26.8", Platform: "linux/amd64"}
	want := "edgeadm v0.1.0 (commit abc) kubernetes v1.37.1 go1.26.8 linux/amd64"
	if got := i.String(); got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
}
