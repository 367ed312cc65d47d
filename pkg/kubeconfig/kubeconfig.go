// Package kubeconfig finds and loads the kubeconfig edgeadm talks to the
// cluster with, the way kubectl and kubeadm users expect:
//
//  1. the --kubeconfig flag; the file must exist;
//  2. $KUBECONFIG, a list of files separated like $PATH and merged as kubectl
//     merges them (the first file to set a value wins, missing files are
//     skipped, but at least one must exist);
//  3. ~/.kube/config;
//  4. /etc/kubernetes/admin.conf, which kubeadm writes on control plane nodes.
//
// Unlike client-go's deferred loader it never falls back to in-cluster
// configuration and never migrates or writes a file.
package kubeconfig

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// AdminConf is where kubeadm writes the cluster-admin kubeconfig.
const AdminConf = "/etc/kubernetes/admin.conf"

// Lookup says where to look for a kubeconfig, in order of precedence. An
// empty field is skipped.
type Lookup struct {
	// Flag is the value of --kubeconfig.
	Flag string
	// Env is the value of $KUBECONFIG.
	Env string
	// Home is the user's home directory, for ~/.kube/config.
	Home string
	// AdminConf is kubeadm's admin kubeconfig, normally AdminConf.
	AdminConf string
}

// FromEnvironment returns the Lookup for this process: flag is the value of
// --kubeconfig; $KUBECONFIG, the home directory and AdminConf come from the
// environment.
func FromEnvironment(flag string) Lookup {
	home, _ := os.UserHomeDir()
	return Lookup{Flag: flag, Env: os.Getenv("KUBECONFIG"), Home: home, AdminConf: AdminConf}
}

// Load resolves the kubeconfig for the --kubeconfig value flag from the
// process environment; see Lookup.Load.
func Load(flag string) (*rest.Config, string, error) {
	return FromEnvironment(flag).Load()
}

// Load returns the client configuration of the current context and the
// kubeconfig it came from. For a $KUBECONFIG list, that is the files that
// exist, joined with the list separator.
func (l Lookup) Load() (*rest.Config, string, error) {
	paths, err := l.Resolve()
	if err != nil {
		return nil, "", err
	}
	chosen := strings.Join(paths, string(filepath.ListSeparator))
	rules := &clientcmd.ClientConfigLoadingRules{Precedence: paths}
	raw, err := rules.Load()
	if err != nil {
		return nil, chosen, fmt.Errorf("read kubeconfig %s: %w: fix the file or pass another with --kubeconfig", chosen, err)
	}
	cfg, err := clientcmd.NewDefaultClientConfig(*raw, &clientcmd.ConfigOverrides{}).ClientConfig()
	if err != nil {
		return nil, chosen, fmt.Errorf("use kubeconfig %s: %w: fix its current context or pass another with --kubeconfig", chosen, err)
	}
	return cfg, chosen, nil
}

// Resolve returns the kubeconfig files to load, following the order in the
// package documentation, without reading them.
func (l Lookup) Resolve() ([]string, error) {
	if l.Flag != "" {
		if err := mustExist(l.Flag); err != nil {
			return nil, fmt.Errorf("kubeconfig from --kubeconfig: %w: check the path", err)
		}
		return []string{l.Flag}, nil
	}
	if l.Env != "" {
		var found []string
		seen := map[string]bool{}
		for _, p := range filepath.SplitList(l.Env) {
			if p == "" || seen[p] {
				continue
			}
			seen[p] = true
			ok, err := exists(p)
			if err != nil {
				return nil, fmt.Errorf("kubeconfig from $KUBECONFIG: %w: fix $KUBECONFIG or pass --kubeconfig", err)
			}
			if ok {
				found = append(found, p)
			}
		}
		if len(found) == 0 {
			return nil, fmt.Errorf("no kubeconfig found: none of the files in $KUBECONFIG (%s) exist: fix $KUBECONFIG or pass --kubeconfig", l.Env)
		}
		return found, nil
	}
	var candidates []string
	if l.Home != "" {
		candidates = append(candidates, filepath.Join(l.Home, ".kube", "config"))
	}
	if l.AdminConf != "" {
		candidates = append(candidates, l.AdminConf)
	}
	for _, p := range candidates {
		ok, err := exists(p)
		if err != nil {
			return nil, fmt.Errorf("kubeconfig: %w: fix its permissions or pass --kubeconfig", err)
		}
		if ok {
			return []string{p}, nil
		}
	}
	return nil, fmt.Errorf("no kubeconfig found: looked in $KUBECONFIG, %s: pass --kubeconfig or set $KUBECONFIG",
		strings.Join(candidates, ", "))
}

func exists(path string) (bool, error) {
	err := mustExist(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	return err == nil, err
}

func mustExist(path string) error {
	info, err := os.Stat(path)
	if err != nil {
		return err
	}
	if info.IsDir() {
		return fmt.Errorf("%s is a directory, not a kubeconfig file", path)
	}
	return nil
}
