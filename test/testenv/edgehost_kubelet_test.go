package testenv

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	certsv1 "k8s.io/api/certificates/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	nodephase "k8s.io/kubernetes/cmd/kubeadm/app/phases/bootstraptoken/node"
)

// The kubelet proof: a real kubelet 1.37 in an edge host joins a real control
// plane by TLS bootstrap with a bootstrap token, the controller-manager
// approves and signs its CSR, and the Node goes Ready.

func TestEdgeHostKubeletJoinsByTLSBootstrap(t *testing.T) {
	paths := edgePaths(t, append(append([]string{}, runtimeBinaries...), "kube-apiserver")...)
	c := NewCluster(t, ControlPlaneOptions{Flavour: Bare})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	h := newTestEdgeHost(t, c.Net, paths, "edge1")
	if err := h.InstallRuntime(ctx); err != nil {
		t.Fatal(err)
	}

	// What `kubeadm init` would have made: a token and the bootstrap RBAC.
	token := createBootstrapToken(ctx, t, c.Client)
	for _, phase := range []func(kubernetes.Interface) error{
		nodephase.AllowBootstrapTokensToPostCSRs,
		nodephase.AutoApproveNodeBootstrapTokens,
		nodephase.AutoApproveNodeCertificateRotation,
	} {
		if err := phase(c.Client); err != nil {
			t.Fatal(err)
		}
	}

	// The edge host dials kubernetes.default, a name the serving certificate
	// has, at the control plane's public address.
	if err := WriteKubeletBootstrap(ctx, c, h, token); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if _, _, err := h.Exec(ctx, "systemctl", "enable", "--now", "kubelet.service"); err != nil {
		t.Fatal(err)
	}
	if err := WaitNodeReady(ctx, c.Client, h.Name, 2*time.Minute); err != nil {
		journal, _, _ := h.Exec(ctx, "journalctl", "-u", "kubelet", "--no-pager", "-n", "60")
		t.Fatalf("node %s: %v\nkubelet journal:\n%s", h.Name, err, journal)
	}
	t.Logf("edge host booted in %s; kubelet started to Node Ready in %s",
		h.BootTime.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))

	// The client certificate came from an approved, signed CSR.
	csrs, err := c.Client.CertificatesV1().CertificateSigningRequests().List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	approved := false
	for _, csr := range csrs.Items {
		for _, cond := range csr.Status.Conditions {
			if cond.Type == certsv1.CertificateApproved && csr.Spec.Username == "system:bootstrap:"+strings.SplitN(token, ".", 2)[0] && len(csr.Status.Certificate) > 0 {
				approved = true
			}
		}
	}
	if !approved {
		t.Errorf("no approved and signed CSR from the bootstrap token among %d CSRs", len(csrs.Items))
	}
	// The kubelet's cgroups are the edge host's own: kubepods.slice sits in
	// the machine's subtree of every controller, not at the build machine's top.
	for _, cg := range h.cgroups {
		if cg.Key != "memory" && cg.Key != "cpu" {
			continue
		}
		if _, err := os.Stat(filepath.Join(cg.Dir, "kubepods.slice")); err != nil {
			t.Errorf("no kubepods.slice in the edge host's %s cgroup: %v", cg.Key, err)
		}
		if _, err := os.Stat(filepath.Join(cg.Mount, "kubepods.slice")); err == nil {
			t.Errorf("kubepods.slice at the top of the build machine's %s hierarchy", cg.Key)
		}
	}
}

// createBootstrapToken makes a bootstrap token Secret the way kubeadm does and
// returns the token.
func createBootstrapToken(ctx context.Context, t *testing.T, client kubernetes.Interface) string {
	t.Helper()
	token, err := NewBootstrapToken(ctx, client, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return token
}
