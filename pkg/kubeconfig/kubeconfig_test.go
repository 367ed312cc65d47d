package kubeconfig

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// kubeconfigFor returns a kubeconfig whose current context points at server.
func kubeconfigFor(server string) string {
	return fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: c
  cluster:
    server: %s
users:
- name: u
  user:
    token: t
contexts:
- name: ctx
  context:
    cluster: c
    user: u
current-context: ctx
`, server)
}

func write(t *testing.T, path, content string) string {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	flagFile := write(t, filepath.Join(dir, "flag.conf"), kubeconfigFor("https://flag:6443"))
	envA := write(t, filepath.Join(dir, "env-a.conf"), kubeconfigFor("https://env-a:6443"))
	envB := write(t, filepath.Join(dir, "env-b.conf"), kubeconfigFor("https://env-b:6443"))
	// Only a current-context: the context it names lives in another file.
	envCurrentOnly := write(t, filepath.Join(dir, "env-current.conf"), "apiVersion: v1\nkind: Config\ncurrent-context: other\n")
	envOther := write(t, filepath.Join(dir, "env-other.conf"), `apiVersion: v1
kind: Config
clusters:
- name: o
  cluster:
    server: https://other:6443
contexts:
- name: other
  context:
    cluster: o
    user: ""
`)
	home := filepath.Join(dir, "home")
	homeConf := write(t, filepath.Join(home, ".kube", "config"), kubeconfigFor("https://home:6443"))
	emptyHome := filepath.Join(dir, "empty-home")
	adminConf := write(t, filepath.Join(dir, "admin.conf"), kubeconfigFor("https://admin:6443"))
	missing := filepath.Join(dir, "missing.conf")
	broken := write(t, filepath.Join(dir, "broken.conf"), "clusters: [this is not a kubeconfig")
	sep := string(filepath.ListSeparator)

	tests := []struct {
		name       string
		lookup     Lookup
		wantHost   string
		wantPath   string
		wantErrHas []string
	}{
		{
			name:     "flag wins over everything",
			lookup:   Lookup{Flag: flagFile, Env: envA, Home: home, AdminConf: adminConf},
			wantHost: "https://flag:6443", wantPath: flagFile,
		},
		{
			name:       "missing flag file is an error, no fallback",
			lookup:     Lookup{Flag: missing, Env: envA, Home: home, AdminConf: adminConf},
			wantErrHas: []string{"--kubeconfig", missing, "check the path"},
		},
		{
			name:     "KUBECONFIG wins over home and admin.conf",
			lookup:   Lookup{Env: envA, Home: home, AdminConf: adminConf},
			wantHost: "https://env-a:6443", wantPath: envA,
		},
		{
			name:     "KUBECONFIG list: first file to set a value wins, missing files skipped",
			lookup:   Lookup{Env: missing + sep + envA + sep + envB, Home: home, AdminConf: adminConf},
			wantHost: "https://env-a:6443", wantPath: envA + sep + envB,
		},
		{
			name:     "KUBECONFIG list is merged across files",
			lookup:   Lookup{Env: envCurrentOnly + sep + envOther},
			wantHost: "https://other:6443", wantPath: envCurrentOnly + sep + envOther,
		},
		{
			name:       "KUBECONFIG naming only missing files is an error, no fallback to home",
			lookup:     Lookup{Env: missing, Home: home, AdminConf: adminConf},
			wantErrHas: []string{"$KUBECONFIG", missing},
		},
		{
			name:     "home config when no flag and no KUBECONFIG",
			lookup:   Lookup{Home: home, AdminConf: adminConf},
			wantHost: "https://home:6443", wantPath: homeConf,
		},
		{
			name:     "admin.conf when home has no config",
			lookup:   Lookup{Home: emptyHome, AdminConf: adminConf},
			wantHost: "https://admin:6443", wantPath: adminConf,
		},
		{
			name:       "nothing found",
			lookup:     Lookup{Home: emptyHome, AdminConf: missing},
			wantErrHas: []string{"no kubeconfig found", "pass --kubeconfig"},
		},
		{
			name:       "unreadable kubeconfig names the file",
			lookup:     Lookup{Flag: broken},
			wantErrHas: []string{broken},
		},
		{
			name:       "a directory is not a kubeconfig",
			lookup:     Lookup{Flag: dir},
			wantErrHas: []string{"is a directory"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, path, err := tt.lookup.Load()
			if len(tt.wantErrHas) > 0 {
				if err == nil {
					t.Fatalf("Load() = %s, nil error; want an error", path)
				}
				for _, s := range tt.wantErrHas {
					if !strings.Contains(err.Error(), s) {
						t.Errorf("error %q does not contain %q", err, s)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("Load(): %v", err)
			}
			if cfg.Host != tt.wantHost {
				t.Errorf("host = %q, want %q", cfg.Host, tt.wantHost)
			}
			if path != tt.wantPath {
				t.Errorf("path = %q, want %q", path, tt.wantPath)
			}
		})
	}
}

func TestFromEnvironment(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("KUBECONFIG", "/a"+string(filepath.ListSeparator)+"/b")
	got := FromEnvironment("/flag")
	want := Lookup{Flag: "/flag", Env: "/a" + string(filepath.ListSeparator) + "/b", Home: home, AdminConf: AdminConf}
	if got != want {
		t.Errorf("FromEnvironment() = %+v, want %+v", got, want)
	}
}

func TestLoadReadsTheProcessEnvironment(t *testing.T) {
	home := t.TempDir()
	conf := write(t, filepath.Join(home, ".kube", "config"), kubeconfigFor("https://home:6443"))
	t.Setenv("HOME", home)
	t.Setenv("KUBECONFIG", "")
	cfg, path, err := Load("")
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if path != conf || cfg.Host != "https://home:6443" {
		t.Errorf("Load() = %s %s, want %s https://home:6443", path, cfg.Host, conf)
	}
}
