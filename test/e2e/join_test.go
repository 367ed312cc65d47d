package e2e

import (
	"archive/tar"
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	watchtools "k8s.io/client-go/tools/watch"

	"github.com/edgeadm/edgeadm/pkg/cmd/join"
	"github.com/edgeadm/edgeadm/pkg/cmd/join/phases"
	"github.com/edgeadm/edgeadm/pkg/installpkg/ftptest"
	"github.com/edgeadm/edgeadm/test/testenv"
)

// Bounds of what these tests wait for in the cluster.
const (
	nodeReadyTimeout = 3 * time.Minute
	podRunTimeout    = 2 * time.Minute
)

// joinEnv is a cluster prepared for edge joins, a token, and an edge host
// holding the edgeadm binary and the install package (in /root, outside
// what the snapshots compare).
type joinEnv struct {
	c        *testenv.Cluster
	h        *testenv.EdgeHost
	tok      printedJoin
	pkgPath  string // on this machine
	pkgSHA   string
	pauseRef string
}

func newJoinEnv(t *testing.T, opts testenv.ControlPlaneOptions, hostName string) *joinEnv {
	t.Helper()
	pkg, sum := installPackage(t) // before anything starts: skip early if it is missing
	c := testenv.NewCluster(t, opts)
	prepareJoin(t, c, c.AdminKubeconfig, c.PublicEndpoint())
	if opts.Flavour != testenv.BareNoBootstrapSigner {
		waitSignerUp(t, c.Client)
	}
	e := &joinEnv{c: c, pkgPath: pkg, pkgSHA: sum}
	e.tok = e.newToken(t)
	if e.tok.addr != c.PublicEndpoint() {
		t.Fatalf("the join command names %s, want the public address %s", e.tok.addr, c.PublicEndpoint())
	}
	for _, im := range packageManifest(t, pkg).Images {
		if im.Path == "images/pause.tar" {
			e.pauseRef = im.Ref
		}
	}
	e.h = newEdgeHost(t, c, hostName)
	if err := e.h.CopyIn(Edgeadm(t), edgeadmInHost, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := e.h.CopyIn(pkg, pkgInHost, 0o644); err != nil {
		t.Fatal(err)
	}
	return e
}

func (e *joinEnv) newToken(t *testing.T, extra ...string) printedJoin {
	t.Helper()
	args := append([]string{"token", "create", "--print-join-command", "--kubeconfig", e.c.AdminKubeconfig, "--ca.cert", e.c.CACertPath}, extra...)
	return parseJoin(t, RunEdgeadm(t, args...))
}

// joinArgs is the printed join command plus the package and a label.
func (e *joinEnv) joinArgs(extra ...string) []string {
	return append([]string{"join", e.tok.addr, "--token", e.tok.token(), "--discovery-token-ca-cert-hash", e.tok.hash,
		"--install-pkg-path", pkgInHost, "--install-pkg-sha256", e.pkgSHA, "--node-labels", "e2e.edgeadm.io/site=lab"}, extra...)
}

func (e *joinEnv) reset(t *testing.T) hostRun {
	t.Helper()
	r := edgeadmIn(t, e.h, nil, "reset", "-f")
	if r.Code != 0 {
		t.Fatalf("reset: exit %d\nstdout: %s\nstderr: %s", r.Code, r.Stdout, r.Stderr)
	}
	return r
}

// netState is what the kubelet and CNI plugins leave in the network stack.
func netState(t *testing.T, h *testenv.EdgeHost) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var b strings.Builder
	links, _, err := h.Exec(ctx, "ip", "-o", "link", "show")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(links, "\n") {
		if f := strings.Fields(l); len(f) > 1 {
			b.WriteString("link " + strings.SplitN(strings.TrimSuffix(f[1], ":"), "@", 2)[0] + "\n")
		}
	}
	for _, save := range []string{"iptables-save", "ip6tables-save"} {
		out, _, err := h.Exec(ctx, save)
		if err != nil {
			t.Fatal(err)
		}
		for _, table := range strings.Split(out, "\n*")[1:] {
			lines := strings.Split(strings.TrimSpace(table), "\n")
			if emptyTable(lines) {
				continue
			}
			for _, l := range lines {
				if strings.HasPrefix(l, ":") || strings.HasPrefix(l, "-A") {
					// Counters ([packets:bytes]) change with traffic.
					if i := strings.LastIndex(l, " ["); strings.HasPrefix(l, ":") && i > 0 {
						l = l[:i]
					}
					b.WriteString(save + " " + lines[0] + " " + l + "\n")
				}
			}
		}
	}
	mounts, _, err := h.Exec(ctx, "cat", "/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(mounts, "\n") {
		if f := strings.Fields(l); len(f) > 4 {
			b.WriteString("mount " + f[4] + "\n")
		}
	}
	return b.String()
}

// emptyTable says whether an iptables-save table holds nothing but its
// built-in chains, with policy ACCEPT and no rules: what a table looks like
// once anything has touched it. The kubelet touches tables that did not
// exist (with iptables-nft), and iptables has no way to remove a table again;
// such a table does nothing, and docs/join.md lists it as the one leftover.
func emptyTable(lines []string) bool {
	builtin := map[string]bool{"PREROUTING": true, "INPUT": true, "FORWARD": true, "OUTPUT": true, "POSTROUTING": true}
	for _, l := range lines[1:] {
		switch {
		case l == "COMMIT" || l == "" || strings.HasPrefix(l, "#"):
		case strings.HasPrefix(l, ":"):
			f := strings.Fields(l[1:])
			if len(f) < 2 || !builtin[f[0]] || f[1] != "ACCEPT" {
				return false
			}
		default:
			return false
		}
	}
	return true
}

func sameNet(t *testing.T, what, before, after string) {
	t.Helper()
	if before != after {
		bl, al := strings.Split(before, "\n"), strings.Split(after, "\n")
		var diff []string
		for _, l := range al {
			if !contains(bl, l) {
				diff = append(diff, "+ "+l)
			}
		}
		for _, l := range bl {
			if !contains(al, l) {
				diff = append(diff, "- "+l)
			}
		}
		t.Fatalf("%s: links, iptables or mounts differ from before the join:\n  %s", what, strings.Join(diff, "\n  "))
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// watchNode waits, bounded, until cond holds for the Node.
func watchNode(t testing.TB, client kubernetes.Interface, name string, timeout time.Duration, cond func(*corev1.Node) bool) *corev1.Node {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	sel := fields.OneTermEqualSelector("metadata.name", name).String()
	lw := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			o.FieldSelector = sel
			return client.CoreV1().Nodes().List(ctx, o)
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			o.FieldSelector = sel
			return client.CoreV1().Nodes().Watch(ctx, o)
		},
	}
	var last *corev1.Node
	_, err := watchtools.UntilWithSync(ctx, lw, &corev1.Node{}, nil, func(ev watch.Event) (bool, error) {
		n, ok := ev.Object.(*corev1.Node)
		if ok {
			last = n
		}
		return ok && cond(n), nil
	})
	if err != nil {
		t.Fatalf("node %s: not as wanted within %s (last seen: %+v)", name, timeout, last)
	}
	return last
}

func ready(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// runPinnedPod runs a pod on node with the package's pause image, never
// pulled, and waits, bounded, until it runs.
func runPinnedPod(t *testing.T, client kubernetes.Interface, node, image string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), podRunTimeout)
	defer cancel()
	no, zero := false, int64(0)
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "pinned-" + node, Namespace: metav1.NamespaceDefault},
		Spec: corev1.PodSpec{
			NodeName:                      node,
			AutomountServiceAccountToken:  &no,
			TerminationGracePeriodSeconds: &zero,
			Containers:                    []corev1.Container{{Name: "pause", Image: image, ImagePullPolicy: corev1.PullNever}},
		},
	}
	pods := client.CoreV1().Pods(metav1.NamespaceDefault)
	if _, err := pods.Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	sel := fields.OneTermEqualSelector("metadata.name", pod.Name).String()
	lw := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			o.FieldSelector = sel
			return pods.List(ctx, o)
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			o.FieldSelector = sel
			return pods.Watch(ctx, o)
		},
	}
	var last *corev1.Pod
	_, err := watchtools.UntilWithSync(ctx, lw, &corev1.Pod{}, nil, func(ev watch.Event) (bool, error) {
		p, ok := ev.Object.(*corev1.Pod)
		if ok {
			last = p
		}
		return ok && p.Status.Phase == corev1.PodRunning, nil
	})
	if err != nil {
		t.Fatalf("pod %s on %s did not run within %s: %+v", pod.Name, node, podRunTimeout, last.Status)
	}
	_ = pods.Delete(context.Background(), pod.Name, metav1.DeleteOptions{GracePeriodSeconds: &zero})
}

func TestJoinKubeadmLike(t *testing.T) {
	testJoinAndReset(t, testenv.ControlPlaneOptions{Flavour: testenv.KubeadmLike}, false)
}

// The bare cluster gets its package over FTP, and a port that is not 6443.
func TestJoinBare(t *testing.T) {
	testJoinAndReset(t, testenv.ControlPlaneOptions{Flavour: testenv.Bare, APIServerPort: 7443}, true)
}

func testJoinAndReset(t *testing.T, opts testenv.ControlPlaneOptions, overFTP bool) {
	e := newJoinEnv(t, opts, "edge-join")
	c, h := e.c, e.h
	args := e.joinArgs("-o", "json")
	var env []string
	if overFTP {
		ftptest.Skip(t)
		srv := ftptest.Start(t, ftptest.Config{ListenIP: c.Net.HostIP.String()})
		data, err := os.ReadFile(e.pkgPath)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(srv.Root, "kube.tar.gz"), data, 0o644); err != nil {
			t.Fatal(err)
		}
		args = replaceFlag(args, "--install-pkg-path", srv.URL("kube.tar.gz"))
		env = []string{"EDGEADM_FTP_PASSWORD=" + srv.Password}
	}

	hostsBefore, err := h.ReadFile("/etc/hosts")
	if err != nil {
		t.Fatal(err)
	}
	before, netBefore := snapshot(t, h), netState(t, h)

	// A dry run checks everything and changes nothing.
	r := edgeadmIn(t, h, env, e.joinArgs("--dry-run")...)
	if r.Code != 0 || !strings.Contains(r.Stdout, "Dry run: nothing was changed") || !strings.Contains(r.Stderr, "[dry-run] would install /usr/local/bin/kubelet") {
		t.Fatalf("dry run: exit %d\nstdout: %s\nstderr: %s", r.Code, r.Stdout, r.Stderr)
	}
	sameSnapshot(t, "dry run", before, snapshot(t, h))

	// Join through the public address, which the certificate does not carry.
	r = edgeadmIn(t, h, env, args...)
	if r.Code != 0 {
		t.Fatalf("join: exit %d\nstdout: %s\nstderr: %s", r.Code, r.Stdout, r.Stderr)
	}
	assertNoSecret(t, "join stderr", r.Stderr, e.tok.secret)
	assertNoSecret(t, "join stdout", r.Stdout, e.tok.secret)
	rep := parseReport(t, r)
	if !rep.Succeeded || rep.NodeName != h.Name || rep.Server != "https://kubernetes.default:"+fmt.Sprint(c.Options.APIServerPort) {
		t.Errorf("report: %+v", rep)
	}
	t.Log(phaseShares(rep))
	hosts, _ := h.ReadFile("/etc/hosts")
	if want := c.Net.CloudIP.String() + " kubernetes.default\n"; !strings.Contains(string(hosts), "# BEGIN edgeadm\n"+want+"# END edgeadm\n") {
		t.Errorf("/etc/hosts after join:\n%s", hosts)
	}

	node := watchNode(t, c.Client, h.Name, nodeReadyTimeout, ready)
	if node.Labels[phases.EdgeNodeLabel] != phases.EdgeNodeLabelValue || node.Labels["e2e.edgeadm.io/site"] != "lab" {
		t.Errorf("node labels: %v", node.Labels)
	}
	runPinnedPod(t, c.Client, h.Name, e.pauseRef)

	// The same join again: a no-op that exits 0.
	r = edgeadmIn(t, h, env, args...)
	if r.Code != 0 || !parseReport(t, r).AlreadyJoined {
		t.Fatalf("second join: exit %d\nstdout: %s\nstderr: %s", r.Code, r.Stdout, r.Stderr)
	}

	// Reset: the host as before, /etc/hosts byte for byte.
	r = e.reset(t)
	if !strings.Contains(r.Stdout, "kubectl delete node "+h.Name) {
		t.Errorf("reset does not say how to remove the Node: %q", r.Stdout)
	}
	hostsAfter, _ := h.ReadFile("/etc/hosts")
	if string(hostsAfter) != string(hostsBefore) {
		t.Errorf("/etc/hosts after reset:\n%q\nbefore:\n%q", hostsAfter, hostsBefore)
	}
	sameSnapshot(t, "join then reset", before, snapshot(t, h))
	sameNet(t, "join then reset", netBefore, netState(t, h))
	for _, u := range []string{"kubelet.service", "containerd.service"} {
		out, _, _ := h.Exec(context.Background(), "systemctl", "is-active", u)
		if strings.TrimSpace(out) == "active" {
			t.Errorf("%s still runs after reset", u)
		}
	}
}

// A domain join: the operator points a name the certificate carries at the
// API server; join adds no /etc/hosts line and the node uses the domain.
func TestJoinByDomain(t *testing.T) {
	e := newJoinEnv(t, testenv.ControlPlaneOptions{Flavour: testenv.KubeadmLike}, "edge-domain")
	c, h := e.c, e.h
	const domain = "kubernetes.default.svc"
	if err := h.AddHosts(c.Net.CloudIP, domain); err != nil {
		t.Fatal(err)
	}
	hostsBefore, _ := h.ReadFile("/etc/hosts")
	before, netBefore := snapshot(t, h), netState(t, h)
	args := e.joinArgs("-o", "json")
	args[1] = fmt.Sprintf("%s:%d", domain, c.Options.APIServerPort)
	r := edgeadmIn(t, h, nil, args...)
	if r.Code != 0 {
		t.Fatalf("join: exit %d\nstderr: %s", r.Code, r.Stderr)
	}
	if rep := parseReport(t, r); rep.Server != fmt.Sprintf("https://%s:%d", domain, c.Options.APIServerPort) {
		t.Errorf("server %s", rep.Server)
	}
	if hosts, _ := h.ReadFile("/etc/hosts"); string(hosts) != string(hostsBefore) {
		t.Errorf("a domain join changed /etc/hosts:\n%s", hosts)
	}
	watchNode(t, c.Client, h.Name, nodeReadyTimeout, ready)
	e.reset(t)
	sameSnapshot(t, "domain join then reset", before, snapshot(t, h))
	sameNet(t, "domain join then reset", netBefore, netState(t, h))
}

func replaceFlag(args []string, flag, value string) []string {
	out := append([]string(nil), args...)
	for i := range out {
		if out[i] == flag && i+1 < len(out) {
			out[i+1] = value
		}
	}
	return out
}

// A join killed (SIGKILL, through the test-only hook) at each phase
// boundary, then run again (it completes) or reset (the host is clean).
func TestJoinKilledAtEachPhaseBoundary(t *testing.T) {
	e := newJoinEnv(t, testenv.ControlPlaneOptions{Flavour: testenv.Bare}, "edge-kill")
	h := e.h
	before, netBefore := snapshot(t, h), netState(t, h)
	var boundaries []string
	for _, p := range phases.All() {
		if !p.Hidden {
			boundaries = append(boundaries, p.Name)
		}
	}
	if testing.Short() {
		boundaries = []string{"install", "containerd", "discovery", "edgehub", "kubelet-start", "label"}
	}
	for _, phase := range boundaries {
		for _, then := range []string{"reset", "rerun"} {
			t.Run(phase+"-then-"+then, func(t *testing.T) {
				r := edgeadmIn(t, h, []string{join.KillAtEnv + "=" + phase}, e.joinArgs()...)
				if !r.Killed {
					t.Fatalf("not killed after %s: exit %d\nstderr: %s", phase, r.Code, r.Stderr)
				}
				if then == "rerun" {
					r = edgeadmIn(t, h, nil, e.joinArgs("-o", "json")...)
					if r.Code != 0 {
						t.Fatalf("rerun after a kill after %s: exit %d\nstderr: %s", phase, r.Code, r.Stderr)
					}
					if rep := parseReport(t, r); phase != "preflight" && phase != "fetch-package" && !rep.Resumed {
						t.Errorf("the rerun did not continue the interrupted join: %+v", rep)
					}
					watchNode(t, e.c.Client, h.Name, nodeReadyTimeout, ready)
				}
				e.reset(t)
				sameSnapshot(t, "kill after "+phase+", "+then+", reset", before, snapshot(t, h))
				sameNet(t, "kill after "+phase+", "+then+", reset", netBefore, netState(t, h))
				_ = e.c.Client.CoreV1().Nodes().Delete(context.Background(), h.Name, metav1.DeleteOptions{})
			})
		}
	}
}

// Bad inputs fail cleanly and leave the host exactly as it was.
func TestJoinBadInputsLeaveHostUnchanged(t *testing.T) {
	e := newJoinEnv(t, testenv.ControlPlaneOptions{Flavour: testenv.Bare}, "edge-bad")
	c, h := e.c, e.h
	// A name the certificate lacks, pointing at the API server.
	if err := h.AddHosts(c.Net.CloudIP, "api.edge.test"); err != nil {
		t.Fatal(err)
	}
	expired := e.newToken(t, "--description", "expires")
	expire(t, c.Client, expired.id)
	waitSecretGone(t, c.Client, expired.id)
	waitUnsigned(t, c.Client, expired.id)

	// Broken packages, made from the real one.
	dir := t.TempDir()
	garbage := make([]byte, 1<<16)
	_, _ = rand.Read(garbage)
	if err := os.WriteFile(filepath.Join(dir, "corrupt.tar.gz"), garbage, 0o644); err != nil {
		t.Fatal(err)
	}
	rewriteArchive(t, e.pkgPath, filepath.Join(dir, "tampered.tar.gz"), func(hd *tar.Header, data []byte) ([]byte, bool) {
		if hd.Name == "bin/crictl" {
			data = append([]byte(nil), data...)
			data[len(data)/2] ^= 0xff
		}
		return data, true
	})
	rewriteArchive(t, e.pkgPath, filepath.Join(dir, "dotdot.tar.gz"), keepAll, func(tw *tar.Writer) {
		_ = tw.WriteHeader(&tar.Header{Name: "../evil", Mode: 0o644, Size: 4, Typeflag: tar.TypeReg})
		_, _ = tw.Write([]byte("evil"))
	})
	other := "arm64"
	if packageManifest(t, e.pkgPath).Arch == "arm64" {
		other = "amd64"
	}
	rewriteArchive(t, e.pkgPath, filepath.Join(dir, "otherarch.tar.gz"), editManifest(func(m map[string]any) { m["arch"] = other }))
	for _, name := range []string{"corrupt.tar.gz", "tampered.tar.gz", "dotdot.tar.gz", "otherarch.tar.gz"} {
		if err := h.CopyIn(filepath.Join(dir, name), "/root/"+name, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// A user that is not root may run the binary.
	if err := h.CopyIn(Edgeadm(t), "/var/tmp/edgeadm-user", 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _, _ = h.Exec(context.Background(), "rm", "-f", "/var/tmp/edgeadm-user") })

	var srv *ftptest.Server
	if ftptest.Available() == nil {
		srv = ftptest.Start(t, ftptest.Config{ListenIP: c.Net.HostIP.String()})
	}

	before, netBefore := snapshot(t, h), netState(t, h)
	hostsBefore, _ := h.ReadFile("/etc/hosts")
	pkgless := func(extra ...string) []string {
		a := e.joinArgs(extra...)
		for i := range a {
			if a[i] == "--install-pkg-sha256" {
				return append(a[:i:i], a[i+2:]...)
			}
		}
		return a
	}
	withPkg := func(p string) []string { return replaceFlag(pkgless(), "--install-pkg-path", p) }
	_, port, _ := strings.Cut(e.tok.addr, ":")
	tests := []struct {
		name string
		args func() []string
		env  []string
		code int
		has  string
		ftp  bool
	}{
		{"wrong token", func() []string { return replaceFlag(e.joinArgs(), "--token", "zzzzzz."+e.tok.secret) }, nil, 4, `does not know token "zzzzzz"`, false},
		{"wrong secret", func() []string { return replaceFlag(e.joinArgs(), "--token", e.tok.id+".0000000000000000") }, nil, 4, "the secret part of token", false},
		{"wrong CA hash", func() []string {
			return replaceFlag(e.joinArgs(), "--discovery-token-ca-cert-hash", "sha256:"+strings.Repeat("ab", 32))
		}, nil, 4, "does not match --discovery-token-ca-cert-hash", false},
		{"expired token", func() []string { return replaceFlag(e.joinArgs(), "--token", expired.token()) }, nil, 4, "or it has expired", false},
		{"unreachable address", func() []string { a := e.joinArgs(); a[1] = c.Net.CloudIP.String() + ":1"; return a }, nil, 4, "cannot reach the API server", false},
		{"domain not in certificate", func() []string { a := e.joinArgs(); a[1] = "api.edge.test:" + port; return a }, nil, 4, "does not carry api.edge.test", false},
		{"corrupt archive", func() []string { return withPkg("/root/corrupt.tar.gz") }, nil, 1, "corrupt", false},
		{"sha256 mismatch", func() []string {
			return replaceFlag(e.joinArgs(), "--install-pkg-sha256", strings.Repeat("0", 64))
		}, nil, 1, "checksum mismatch", false},
		{"tampered file", func() []string { return withPkg("/root/tampered.tar.gz") }, nil, 1, "bin/crictl", false},
		{"../ entry", func() []string { return withPkg("/root/dotdot.tar.gz") }, nil, 1, "unsafe", false},
		{"wrong arch", func() []string { return withPkg("/root/otherarch.tar.gz") }, nil, 1, "another architecture", false},
		{"FTP missing file", func() []string { return withPkg(srv.URL("missing.tar.gz")) }, nil, 1, "not found", true},
		{"FTP wrong password", func() []string { return withPkg(srv.URL("kube.tar.gz")) }, []string{"EDGEADM_FTP_PASSWORD=wrong"}, 1, "login refused", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.ftp && srv == nil {
				testenv.SkipOrFail(t, fmt.Sprintf("no FTP test server: %v", ftptest.Available()))
			}
			if tt.ftp && tt.env == nil {
				tt.env = []string{"EDGEADM_FTP_PASSWORD=" + srv.Password}
			}
			r := edgeadmIn(t, h, tt.env, tt.args()...)
			if r.Code != tt.code || !strings.Contains(r.Stderr, tt.has) {
				t.Errorf("exit %d (want %d); stderr lacks %q:\n%s", r.Code, tt.code, tt.has, r.Stderr)
			}
			assertNoSecret(t, tt.name+" stderr", r.Stderr, e.tok.secret)
			sameSnapshot(t, tt.name, before, snapshot(t, h))
		})
	}
	t.Run("not root", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		argv := append([]string{"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "/var/tmp/edgeadm-user"}, e.joinArgs()...)
		_, stderr, err := h.Exec(ctx, argv...)
		if err == nil || !strings.Contains(stderr, "run it as root") {
			t.Errorf("as nobody: %v\n%s", err, stderr)
		}
		sameSnapshot(t, "not root", before, snapshot(t, h))
	})
	hostsAfter, _ := h.ReadFile("/etc/hosts")
	if string(hostsAfter) != string(hostsBefore) {
		t.Errorf("/etc/hosts changed:\n%q\nbefore:\n%q", hostsAfter, hostsBefore)
	}
	sameNet(t, "bad inputs", netBefore, netState(t, h))
}
