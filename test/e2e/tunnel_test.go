package e2e

import (
	"os"
	"strings"
	"testing"

	"github.com/edgeadm/edgeadm/test/inventory"
	"github.com/edgeadm/edgeadm/test/testenv"
)

// TestTunnelRefusedWhereTheAPIServerCannotBeConfigured: addon wants the
// tunnel by default; on a kubeadm-like cluster whose API server is not a
// static pod of this host, it refuses before changing anything (exit 4),
// says why and what would work, and names --tunnel=false. A dry run
// refuses the same way.
func TestTunnelRefusedWhereTheAPIServerCannotBeConfigured(t *testing.T) {
	if _, err := os.Stat("/etc/kubernetes/manifests/kube-apiserver.yaml"); err == nil {
		t.Fatal("this machine is a kubeadm master: addon would reconfigure its API server; run the e2e tests elsewhere")
	}
	c := testenv.NewCluster(t, testenv.ControlPlaneOptions{Flavour: testenv.KubeadmLike, APIServerPort: 7443, ServiceCIDR: "10.112.0.0/16"})
	before := stable(t, c, inventory.Exact)
	base := []string{"addon", "edge-apps", "--kubeconfig", c.AdminKubeconfig, "--ca.cert", c.CACertPath, "--master-public-addr", c.PublicEndpoint()}
	for name, args := range map[string][]string{
		"default":               base,
		"explicit --tunnel":     append(append([]string{}, base...), "--tunnel"),
		"dry run":               append(append([]string{}, base...), "--dry-run", "-o", "yaml"),
		"-o json, machine-read": append(append([]string{}, base...), "-o", "json"),
	} {
		t.Run(name, func(t *testing.T) {
			r := RunEdgeadm(t, args...)
			if r.Code != 4 {
				t.Fatalf("exit %d, want 4\nstdout: %s\nstderr: %s", r.Code, r.Stdout, r.Stderr)
			}
			for _, want := range []string{"egress-selector-config-file", "no kube-apiserver static pod manifest is reachable from here",
				"run addon on a kubeadm master", "--tunnel=false"} {
				if !strings.Contains(r.Stderr, want) {
					t.Errorf("the refusal does not say %q:\n%s", want, r.Stderr)
				}
			}
			if strings.TrimSpace(r.Stdout) != "" {
				t.Errorf("a refused run printed a result:\n%s", r.Stdout)
			}
		})
	}
	settled(t, c, inventory.Exact, before, "the refused runs")
}
