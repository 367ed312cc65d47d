package e2e

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"slices"
	"strings"
	"testing"
	"time"

	authnv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"

	"github.com/edgeadm/edgeadm/manifests"
	"github.com/edgeadm/edgeadm/pkg/edgecontroller"
	"github.com/edgeadm/edgeadm/pkg/edgehub/redirect"
	"github.com/edgeadm/edgeadm/test/testenv"
)

const (
	// icProbeDir is where the probe pod writes what it got, on the edge host
	// (a hostPath), so the test reads it with the link cut.
	icProbeDir = "/var/lib/edgeadm-e2e/inclusterprobe"
	// icTimeout bounds each wait of the test: edgehub's certificate (a CSR
	// approved and signed), the pod running, an answer.
	icTimeout = 3 * time.Minute
	icNS      = "incluster-e2e"
)

// inClusterProbeImage builds testdata/inclusterprobe (static) into an image
// with the builder of `make images`.
func inClusterProbeImage(t *testing.T) (tarball, ref string) {
	t.Helper()
	_, self, _, _ := goruntime.Caller(0)
	root := filepath.Join(filepath.Dir(self), "..", "..")
	tool := filepath.Join(root, "_output", "images", ".work", "bin", "images-"+goruntime.GOARCH)
	if _, err := os.Stat(tool); err != nil {
		testenv.SkipOrFail(t, "the image builder is not built: run \"make images\"")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "inclusterprobe")
	build := exec.Command("go", "build", "-trimpath", "-o", bin, "./test/e2e/testdata/inclusterprobe")
	build.Dir, build.Env = root, append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build inclusterprobe: %v\n%s", err, out)
	}
	tarball, ref = filepath.Join(dir, "inclusterprobe.tar"), "edgeadm.e2e/inclusterprobe:e2e"
	out, err := exec.Command(tool, "build", "-o", tarball, "-ref", ref, "-entrypoint", "/inclusterprobe",
		"-bin", goruntime.GOARCH+"=/inclusterprobe="+bin).CombinedOutput()
	if err != nil {
		t.Fatalf("pack inclusterprobe: %v\n%s", err, out)
	}
	return tarball, ref
}

// icStatus is what testdata/inclusterprobe writes.
type icStatus struct {
	Time           time.Time `json:"time"`
	Host           string    `json:"host"`
	Value          string    `json:"value"`
	Listed         []string  `json:"listed"`
	ServerCN       string    `json:"serverCN"`
	GetError       string    `json:"getError"`
	ListErr        string    `json:"listError"`
	ForeignCAError string    `json:"foreignCAError"`
}

// waitProbe waits until a round of the probe on h that started after since
// satisfies ok.
func waitProbe(t *testing.T, h *testenv.EdgeHost, since time.Time, what string, ok func(icStatus) bool) icStatus {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), icTimeout)
	defer cancel()
	var last icStatus
	err := testenv.Poll(ctx, 500*time.Millisecond, func(context.Context) (bool, error) {
		b, err := h.ReadFile(icProbeDir + "/status.json")
		if err != nil {
			return false, nil
		}
		var st icStatus
		if json.Unmarshal(b, &st) != nil || !st.Time.After(since) {
			return false, nil
		}
		last = st
		return ok(st), nil
	})
	if err != nil {
		t.Fatalf("%s: not within %s; the probe's last round: %+v", what, icTimeout, last)
	}
	return last
}

// runApprover runs edge-controller in this process with its own service
// account's token, so the RBAC addon made is what it has.
func runApprover(t *testing.T, c *testenv.Cluster) {
	t.Helper()
	ctx := context.Background()
	tok, err := c.Client.CoreV1().ServiceAccounts(manifests.Namespace).CreateToken(ctx, "edge-controller", &authnv1.TokenRequest{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cfg := rest.AnonymousClientConfig(c.RESTConfig)
	cfg.BearerToken = tok.Status.Token
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	comp, err := edgecontroller.NewComponent(client, dyn, clock.RealClock{}, edgecontroller.DefaultOptions(), 2, klog.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := comp.Start(ctx, time.Minute); err != nil {
		t.Fatalf("edge-controller with its service account: %v", err)
	}
	t.Cleanup(func() {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = comp.Stop(sctx)
	})
}

// natRules is the nat table's rules of chain on h, "-A" lines only.
func natRules(t *testing.T, h *testenv.EdgeHost, chain string) []string {
	t.Helper()
	out, _, err := h.Exec(context.Background(), "iptables", "-w", "-t", "nat", "-S", chain)
	if err != nil {
		return nil
	}
	var rules []string
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "-A ") {
			rules = append(rules, l)
		}
	}
	return rules
}

// TestInClusterPodThroughEdgeHub: a pod on an edge node using the in-cluster
// configuration (the kubernetes Service's IP, its service account's token and
// ca.crt) reaches the API through edgehub: edgehub got a certificate of the
// cluster CA for the Service from a CSR edge-controller approved, and
// redirects the Service to itself ahead of the stand-in for kube-proxy's rule.
// Online the pod reads fresh answers; with the link cut it reads what it read,
// from edgehub's cache; a client trusting another CA is refused throughout.
// reset removes the redirect.
func TestInClusterPodThroughEdgeHub(t *testing.T) {
	probeTar, probeRef := inClusterProbeImage(t)
	e := newJoinEnv(t, testenv.ControlPlaneOptions{Flavour: testenv.Bare}, "edge-ic")
	c, h := e.c, e.h
	ctx := context.Background()
	runApprover(t, c)

	// What kube-proxy would do on the node: the Service straight to the API
	// server. edgehub's rule must win over it.
	serviceIP := c.ServiceIP()
	if err := h.ProxyKubernetesService(ctx, serviceIP, netip.AddrPortFrom(c.Net.CloudIP, uint16(c.Options.APIServerPort))); err != nil {
		t.Fatal(err)
	}
	if r := edgeadmIn(t, h, nil, e.joinArgs()...); r.Code != 0 {
		t.Fatalf("join: exit %d\nstdout: %s\nstderr: %s", r.Code, r.Stdout, r.Stderr)
	}
	watchNode(t, c.Client, h.Name, nodeReadyTimeout, ready)
	if _, err := h.ReadFile("/var/lib/edgehub/pki/ca.crt"); err != nil {
		testenv.SkipOrFail(t, "join installed no edgehub on the edge host: nothing serves in-cluster pods")
	}
	t.Cleanup(func() {
		if t.Failed() {
			out, _, _ := h.Exec(context.Background(), "journalctl", "-u", "edgehub", "--no-pager", "-n", "60")
			t.Logf("edgehub journal:\n%s", out)
		}
	})

	// edgehub's certificate for the Service, and its redirect, first.
	start := time.Now()
	pctx, cancel := context.WithTimeout(ctx, icTimeout)
	defer cancel()
	if err := testenv.Poll(pctx, time.Second, func(context.Context) (bool, error) {
		pre := natRules(t, h, "PREROUTING")
		return len(pre) > 1 && strings.HasSuffix(pre[0], "-j "+redirect.Chain), nil
	}); err != nil {
		t.Fatalf("edgehub did not redirect the kubernetes Service within %s: PREROUTING %v", icTimeout, natRules(t, h, "PREROUTING"))
	}
	t.Logf("edgehub redirects %s:443 %s after the node was Ready: %v", serviceIP, time.Since(start).Round(time.Second), natRules(t, h, redirect.Chain))
	for _, chain := range []string{"PREROUTING", "OUTPUT"} {
		if rules := natRules(t, h, chain); len(rules) == 0 || !strings.HasSuffix(rules[0], "-j "+redirect.Chain) {
			t.Errorf("nat %s does not jump to %s first: %v", chain, redirect.Chain, rules)
		}
	}
	certPEM, err := h.ReadFile("/var/lib/edgehub/pki/kubernetes-service.crt")
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(certPEM)
	if block == nil {
		t.Fatal("edgehub's kubernetes Service certificate is not PEM")
	}
	leaf, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	caPEM, err := os.ReadFile(c.CACertPath)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(caPEM)
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, DNSName: serviceIP.String(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
		t.Errorf("edgehub's certificate does not verify for %s against the cluster CA: %v", serviceIP, err)
	}
	if mode, _, err := h.Exec(ctx, "stat", "-c", "%a", "/var/lib/edgehub/pki/kubernetes-service.key", "/var/lib/edgehub/pki"); err != nil || strings.Fields(mode)[0] != "600" || strings.Fields(mode)[1] != "700" {
		t.Errorf("key and folder modes %q (%v), want 600 and 700", mode, err)
	}

	// The pod: its namespace's default service account may read ConfigMaps.
	must(t, createNS(ctx, c.Client, icNS))
	_, err = c.Client.RbacV1().Roles(icNS).Create(ctx, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "read-configmaps"},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"configmaps"}, Verbs: []string{"get", "list"}}}}, metav1.CreateOptions{})
	must(t, err)
	_, err = c.Client.RbacV1().RoleBindings(icNS).Create(ctx, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "read-configmaps"},
		RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: "read-configmaps"},
		Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Name: "default", Namespace: icNS}}}, metav1.CreateOptions{})
	must(t, err)
	cm, err := c.Client.CoreV1().ConfigMaps(icNS).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "probe-target"},
		Data: map[string]string{"value": "v1"}}, metav1.CreateOptions{})
	must(t, err)
	must(t, h.ImportImage(ctx, probeTar))
	if err := testenv.Poll(pctx, 500*time.Millisecond, func(ctx context.Context) (bool, error) {
		_, err := c.Client.CoreV1().ServiceAccounts(icNS).Get(ctx, "default", metav1.GetOptions{})
		return err == nil, nil
	}); err != nil {
		t.Fatal("no default service account in the test namespace")
	}
	root, dirType := int64(0), corev1.HostPathDirectoryOrCreate
	_, err = c.Client.CoreV1().Pods(icNS).Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "inclusterprobe"},
		Spec: corev1.PodSpec{
			NodeName: h.Name,
			// Root only to write into the hostPath the test reads.
			SecurityContext: &corev1.PodSecurityContext{RunAsUser: &root},
			Containers: []corev1.Container{{
				Name: "probe", Image: probeRef, ImagePullPolicy: corev1.PullNever,
				Args:         []string{"/out", icNS, cm.Name},
				VolumeMounts: []corev1.VolumeMount{{Name: "out", MountPath: "/out"}},
			}},
			Volumes: []corev1.Volume{{Name: "out", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: icProbeDir, Type: &dirType}}}},
			Tolerations: []corev1.Toleration{
				{Key: corev1.TaintNodeUnreachable, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute},
			},
		},
	}, metav1.CreateOptions{})
	must(t, err)

	wantHost := "https://" + netip.AddrPortFrom(serviceIP, 443).String()
	answered := func(value string) func(icStatus) bool {
		return func(st icStatus) bool {
			return st.GetError == "" && st.ListErr == "" && st.Value == value && slices.Contains(st.Listed, cm.Name)
		}
	}
	online := waitProbe(t, h, time.Time{}, "link up: the pod reads its ConfigMap", answered("v1"))
	if online.Host != wantHost {
		t.Errorf("the pod's in-cluster host is %s, want the kubernetes Service %s", online.Host, wantHost)
	}
	if want := "system:node:" + h.Name; online.ServerCN != want {
		t.Errorf("the pod was answered by a certificate for %q, want edgehub's (%s): the redirect did not take it to edgehub", online.ServerCN, want)
	}
	if !strings.Contains(online.ForeignCAError, "certificate") {
		t.Errorf("a client trusting another CA was not refused for the certificate: %q", online.ForeignCAError)
	}
	t.Logf("link up: the pod reads %s/%s=%s through %s, answered by %s", icNS, cm.Name, online.Value, online.Host, online.ServerCN)

	// Fresh while online: a change shows.
	cm.Data["value"] = "v2"
	_, err = c.Client.CoreV1().ConfigMaps(icNS).Update(ctx, cm, metav1.UpdateOptions{})
	must(t, err)
	waitProbe(t, h, time.Now(), "link up: the pod reads the changed ConfigMap", answered("v2"))

	if err := h.Link().Cut(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Link().Restore(context.Background()) })
	cut := time.Now()
	// Anything answered now comes from edgehub: the API server is unreachable.
	offline := waitProbe(t, h, cut, "link cut: the pod reads from edgehub's cache", answered("v2"))
	if offline.ServerCN != "system:node:"+h.Name || !strings.Contains(offline.ForeignCAError, "certificate") {
		t.Errorf("offline round answered by %q, foreign CA %q", offline.ServerCN, offline.ForeignCAError)
	}
	t.Logf("link cut: the pod reads %s=%s and lists %v, %s after the cut", cm.Name, offline.Value, offline.Listed, offline.Time.Sub(cut).Round(100*time.Millisecond))
	if err := h.Link().Restore(ctx); err != nil {
		t.Fatal(err)
	}

	// reset stops edgehub, which takes its redirect with it (reset would
	// remove what is left); kube-proxy's stand-in stays.
	e.reset(t)
	if rules := natRules(t, h, redirect.Chain); rules != nil {
		t.Errorf("after reset %s is still there: %v", redirect.Chain, rules)
	}
	for _, chain := range []string{"PREROUTING", "OUTPUT"} {
		for _, r := range natRules(t, h, chain) {
			if strings.Contains(r, redirect.Chain) {
				t.Errorf("after reset nat %s still jumps to %s: %s", chain, redirect.Chain, r)
			}
		}
	}
}

func createNS(ctx context.Context, client kubernetes.Interface, name string) error {
	_, err := client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("namespace %s: %w", name, err)
	}
	return nil
}
