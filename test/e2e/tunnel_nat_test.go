package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	goruntime "runtime"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/edgeadm/edgeadm/test/testenv"
)

// The tunnel's success path, end to end: a master made by kubeadm init
// (its API server a static pod), addon run on it as a user would, an edge
// host behind NAT joined, and kubectl logs, exec, port-forward and the
// node proxy reaching that edge only through Konnectivity.

const (
	tunnelNS = "tunnel-e2e"
	// tunnelProbeSize is the file the probe writes: the 10 MB.
	tunnelProbeSize = 10 << 20
	// tunnelWait bounds each wait for the tunnel (an agent connecting,
	// reconnecting, a pod starting).
	tunnelWait = 3 * time.Minute
	// kubectlTimeout bounds one kubectl run.
	kubectlTimeout = 2 * time.Minute
)

// tunnelProbeImage builds testdata/tunnelprobe (static) into an image with
// the test environment's ociimage, as /tunnelprobe and /bin/cat.
func tunnelProbeImage(t testing.TB, paths testenv.Paths) (tarball, ref string) {
	t.Helper()
	tool := filepath.Join(paths.Cache, "tools", "ociimage")
	if _, err := os.Stat(tool); err != nil {
		testenv.SkipOrFail(t, "the test environment's ociimage is not built: run scripts/test-env.sh images")
	}
	_, self, _, _ := goruntime.Caller(0)
	root := filepath.Join(filepath.Dir(self), "..", "..")
	dir := t.TempDir()
	bin := filepath.Join(dir, "tunnelprobe")
	build := exec.Command("go", "build", "-trimpath", "-o", bin, "./test/e2e/testdata/tunnelprobe")
	build.Dir, build.Env = root, append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build tunnelprobe: %v\n%s", err, out)
	}
	tarball, ref = filepath.Join(dir, "tunnelprobe.tar"), "edgeadm.e2e/tunnelprobe:e2e"
	out, err := exec.Command(tool, "build", "-o", tarball, "-tag", ref, "-arch", goruntime.GOARCH, "-entrypoint", "/tunnelprobe",
		"-add", "/tunnelprobe="+bin, "-add", "/bin/cat="+bin).CombinedOutput()
	if err != nil {
		t.Fatalf("pack tunnelprobe: %v\n%s", err, out)
	}
	return tarball, ref
}

// probeFileSHA is the sha256 of the file tunnelprobe writes (its Pattern).
func probeFileSHA(size int) string {
	b := make([]byte, size)
	for i := range b {
		b[i] = byte(i % 251)
	}
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// kubectl runs the cached kubectl from this machine with c's admin
// kubeconfig (so through the master's public address, like a user).
func kubectl(t testing.TB, c *testenv.Cluster, args ...string) (string, string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), kubectlTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, kubectlPath(t, c), append([]string{"--kubeconfig", c.AdminKubeconfig}, args...)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	return out.String(), errb.String(), err
}

// nodeProxyHealthz asks the edge kubelet's /healthz through the API
// server's node proxy, bounded by per.
func nodeProxyHealthz(ctx context.Context, client kubernetes.Interface, node string, per time.Duration) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, per)
	defer cancel()
	body, err := client.CoreV1().RESTClient().Get().AbsPath("/api/v1/nodes", node, "proxy", "healthz").DoRaw(ctx)
	text := strings.TrimSpace(string(body))
	if err != nil && text != "" {
		// The API server's own words (a 503's status text alone says little).
		return text, fmt.Errorf("%w: %s", err, text)
	}
	return text, err
}

// waitNodeProxy polls the node proxy until it answers ok, and says how long
// that took.
func waitNodeProxy(t testing.TB, c *testenv.Cluster, node, what string) time.Duration {
	t.Helper()
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), tunnelWait)
	defer cancel()
	var last string
	err := testenv.Poll(ctx, 500*time.Millisecond, func(ctx context.Context) (bool, error) {
		body, err := nodeProxyHealthz(ctx, c.Client, node, 10*time.Second)
		if err != nil {
			last = err.Error()
			return false, nil
		}
		last = body
		return body == "ok", nil
	})
	if err != nil {
		t.Fatalf("%s: the node proxy to %s did not answer ok within %s (last: %s)", what, node, tunnelWait, last)
	}
	return time.Since(start)
}

// newNATEdgeHost boots an edge host behind its own NAT in c's network,
// torn down when the test ends.
func newNATEdgeHost(t testing.TB, c *testenv.Cluster, name string) *testenv.EdgeHost {
	t.Helper()
	return newEdgeHostWith(t, c, name, testenv.EdgeHostOptions{ServiceCIDR: c.Options.ServiceCIDR, BehindNAT: true})
}

// canDial reports whether a TCP connection from inside h to addr opens
// within five seconds (bash's /dev/tcp: the hosts have no other tool).
func canDial(h *testenv.EdgeHost, addr string) (bool, string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	host, port, _ := strings.Cut(addr, ":")
	_, stderr, err := h.Exec(ctx, "timeout", "5", "bash", "-c", fmt.Sprintf("exec 3<>/dev/tcp/%s/%s", host, port))
	return err == nil, strings.TrimSpace(stderr)
}

// edgeAgentPod is the edge agent's pod on node.
func edgeAgentPod(ctx context.Context, client kubernetes.Interface, node string) (*corev1.Pod, error) {
	pods, err := client.CoreV1().Pods("edge-system").List(ctx, metav1.ListOptions{
		LabelSelector: "app.kubernetes.io/name=konnectivity-agent-edge", FieldSelector: "spec.nodeName=" + node})
	if err != nil {
		return nil, err
	}
	if len(pods.Items) != 1 {
		return nil, fmt.Errorf("%d edge agent pods on %s, want 1", len(pods.Items), node)
	}
	return &pods.Items[0], nil
}

// restartEdgeAgent deletes the edge agent's pod on node, so that the
// DaemonSet makes a new one at once (not after an image pull back-off).
func restartEdgeAgent(t testing.TB, c *testenv.Cluster, node string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var pod *corev1.Pod
	err := testenv.Poll(ctx, 500*time.Millisecond, func(ctx context.Context) (bool, error) {
		var err error
		pod, err = edgeAgentPod(ctx, c.Client, node)
		return err == nil, err
	})
	if err != nil {
		t.Fatalf("the edge agent's pod on %s: %v", node, err)
	}
	if err := c.Client.CoreV1().Pods(pod.Namespace).Delete(ctx, pod.Name, metav1.DeleteOptions{GracePeriodSeconds: new(int64)}); err != nil {
		t.Fatal(err)
	}
}

// runProbePod runs tunnelprobe on node and waits until it has written its
// file.
func runProbePod(t testing.TB, c *testenv.Cluster, node, image, name string) *corev1.Pod {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), tunnelWait)
	defer cancel()
	if err := createNS(ctx, c.Client, tunnelNS); err != nil && !apierrors.IsAlreadyExists(errors.Unwrap(err)) {
		t.Fatal(err)
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: tunnelNS},
		Spec: corev1.PodSpec{
			NodeName:    node,
			Tolerations: []corev1.Toleration{{Operator: corev1.TolerationOpExists}},
			Containers: []corev1.Container{{
				Name: "probe", Image: image, ImagePullPolicy: corev1.PullNever,
				Args:         []string{"-size", fmt.Sprint(tunnelProbeSize)},
				VolumeMounts: []corev1.VolumeMount{{Name: "data", MountPath: "/data"}},
			}},
			Volumes: []corev1.Volume{{Name: "data", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}},
		},
	}
	if _, err := c.Client.CoreV1().Pods(tunnelNS).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var last *corev1.Pod
	err := testenv.Poll(ctx, 500*time.Millisecond, func(ctx context.Context) (bool, error) {
		p, err := c.Client.CoreV1().Pods(tunnelNS).Get(ctx, pod.Name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		last = p
		return p.Status.Phase == corev1.PodRunning, nil
	})
	if err != nil {
		t.Fatalf("tunnelprobe did not run on %s within %s: %v\n%+v", node, tunnelWait, err, last.Status)
	}
	return last
}

// portForwardGET runs kubectl port-forward to the pod's port, GETs / through
// it, and ends the forward.
func portForwardGET(t testing.TB, c *testenv.Cluster, ns, pod string, port int) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), kubectlTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, kubectlPath(t, c), "--kubeconfig", c.AdminKubeconfig, "port-forward", "--address", "127.0.0.1",
		"-n", ns, "pod/"+pod, fmt.Sprintf(":%d", port))
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return "", err
	}
	var errb bytes.Buffer
	cmd.Stderr = &errb
	if err := cmd.Start(); err != nil {
		return "", err
	}
	defer func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}()
	re := regexp.MustCompile(`Forwarding from 127\.0\.0\.1:(\d+) ->`)
	lines := bufio.NewScanner(stdout)
	local := ""
	for local == "" && lines.Scan() {
		if m := re.FindStringSubmatch(lines.Text()); m != nil {
			local = m[1]
		}
	}
	if local == "" {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return "", fmt.Errorf("kubectl port-forward printed no local port: %s", errb.String())
	}
	go func() { _, _ = io.Copy(io.Discard, stdout) }()
	hc := &http.Client{Timeout: 30 * time.Second}
	resp, err := hc.Get("http://127.0.0.1:" + local + "/")
	if err != nil {
		return "", fmt.Errorf("GET through the forward: %w (kubectl: %s)", err, errb.String())
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return string(body), err
}

// tunnelEnv is a master made by kubeadm init with the tunnel on (addon
// run there), an edge host behind NAT joined, and the probe running on both.
type tunnelEnv struct {
	c        *testenv.Cluster
	h        *testenv.EdgeHost
	paths    testenv.Paths
	agentTar string
	// before are the master's manifests before addon.
	before             map[string][]byte
	edgePod, masterPod *corev1.Pod
}

// setupTunnel makes a tunnelEnv, checking each step: addon configured the
// API server, the edge's kubelet cannot be dialled from the control plane's
// namespace, and the node proxy answers through the tunnel.
func setupTunnel(t testing.TB) *tunnelEnv {
	t.Helper()
	pkg, sum := installPackage(t)
	paths := testenv.RequireEnv(t)
	serverTar, agentTar := filepath.Join(paths.Images, "proxy-server.tar"), filepath.Join(paths.Images, "proxy-agent.tar")
	for _, p := range []string{serverTar, agentTar} {
		if _, err := os.Stat(p); err != nil {
			testenv.SkipOrFail(t, fmt.Sprintf("the Konnectivity images are not built (%v): run scripts/test-env.sh konnectivity", err))
		}
	}
	probeTar, probeRef := tunnelProbeImage(t, paths)
	c := testenv.NewKubeadmCluster(t, testenv.ControlPlaneOptions{}, serverTar, agentTar, probeTar)
	m := c.Master
	must(t, m.CopyIn(Edgeadm(t), edgeadmInHost, 0o755))
	before, err := c.KubeadmManifests()
	must(t, err)

	// addon on the master, as root, as a user runs it there.
	start := time.Now()
	r := edgeadmIn(t, m, nil, "addon", "edge-apps", "--kubeconfig", "/etc/kubernetes/admin.conf", "--master-public-addr", c.PublicEndpoint())
	if r.Code != 0 {
		t.Fatalf("addon on the master: exit %d\nstdout: %s\nstderr: %s", r.Code, r.Stdout, r.Stderr)
	}
	t.Logf("addon edge-apps with the tunnel on the kubeadm master: %s\n%s", time.Since(start).Round(time.Millisecond), r.Stderr)
	configured, err := c.KubeadmManifests()
	must(t, err)
	if !bytes.Contains(configured["kube-apiserver.yaml"], []byte("--egress-selector-config-file=")) {
		t.Fatalf("addon left the API server without the egress selector:\n%s", configured["kube-apiserver.yaml"])
	}
	if _, ok := configured["konnectivity-server.yaml"]; !ok {
		t.Fatalf("addon wrote no proxy server static pod (manifests: %d files)", len(configured))
	}

	// The edge host behind NAT joins.
	h := newNATEdgeHost(t, c, "edge-nat")
	must(t, h.CopyIn(Edgeadm(t), edgeadmInHost, 0o755))
	must(t, h.CopyIn(pkg, pkgInHost, 0o644))
	tok := parseJoin(t, RunEdgeadm(t, "token", "create", "--print-join-command", "--kubeconfig", c.AdminKubeconfig, "--ca.cert", c.CACertPath))
	start = time.Now()
	r = edgeadmIn(t, h, nil, "join", tok.addr, "--token", tok.token(), "--discovery-token-ca-cert-hash", tok.hash,
		"--install-pkg-path", pkgInHost, "--install-pkg-sha256", sum)
	if r.Code != 0 {
		t.Fatalf("join behind NAT: exit %d\nstdout: %s\nstderr: %s", r.Code, r.Stdout, r.Stderr)
	}
	node := watchNode(t, c.Client, h.Name, nodeReadyTimeout, ready)
	t.Logf("edge host behind NAT joined and Ready in %s", time.Since(start).Round(time.Millisecond))
	ctx := context.Background()
	// No registry: the images come in by hand, then the agent starts over.
	must(t, h.ImportImage(ctx, agentTar))
	must(t, h.ImportImage(ctx, probeTar))
	restartEdgeAgent(t, c, h.Name)

	// First: no direct path from the control plane to the edge kubelet.
	internal := ""
	for _, a := range node.Status.Addresses {
		if a.Type == corev1.NodeInternalIP {
			internal = a.Address
		}
	}
	if internal != h.IP().String() {
		t.Fatalf("node %s reports InternalIP %q, want its private address %s", h.Name, internal, h.IP())
	}
	if ok, _ := canDial(m, internal+":10250"); ok {
		t.Fatalf("the master dialled the edge kubelet at %s:10250 directly: the NAT does not hide it, so this test would prove nothing", internal)
	}
	if ok, msg := canDial(h, c.PublicEndpoint()); !ok {
		t.Fatalf("the edge host cannot reach the API server at %s through its NAT: %s", c.PublicEndpoint(), msg)
	}

	// The node proxy, through the tunnel.
	took := waitNodeProxy(t, c, h.Name, "after join")
	t.Logf("node proxy /healthz of %s through the tunnel answered ok %s after the edge agent was restarted", h.Name, took.Round(time.Millisecond))
	return &tunnelEnv{c: c, h: h, paths: paths, agentTar: agentTar, before: before,
		edgePod:   runProbePod(t, c, h.Name, probeRef, "tunnelprobe"),
		masterPod: runProbePod(t, c, testenv.KubeadmMasterName, probeRef, "tunnelprobe-master")}
}

// detach runs detach on the master and checks that every manifest is back
// byte for byte and the API server Ready without the egress selector.
func (e *tunnelEnv) detach(t testing.TB) {
	t.Helper()
	c := e.c
	r := edgeadmIn(t, c.Master, nil, "detach", "edge-apps", "--kubeconfig", "/etc/kubernetes/admin.conf", "--force")
	if r.Code != 0 {
		t.Fatalf("detach on the master: exit %d\nstdout: %s\nstderr: %s", r.Code, r.Stdout, r.Stderr)
	}
	after, err := c.KubeadmManifests()
	must(t, err)
	if len(after) != len(e.before) {
		t.Errorf("after detach the manifests folder has %d files, before addon %d", len(after), len(e.before))
	}
	for name, data := range e.before {
		if !bytes.Equal(after[name], data) {
			t.Errorf("%s after detach differs from before addon:\n--- before\n%s\n--- after\n%s", name, data, after[name])
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), tunnelWait)
	defer cancel()
	err = testenv.Poll(ctx, time.Second, func(ctx context.Context) (bool, error) {
		pod, err := c.Client.CoreV1().Pods(metav1.NamespaceSystem).Get(ctx, "kube-apiserver-"+testenv.KubeadmMasterName, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		for _, arg := range pod.Spec.Containers[0].Command {
			if strings.HasPrefix(arg, "--egress-selector-config-file") {
				return false, nil
			}
		}
		return testenv.MasterPodReady(ctx, c.Client, "kube-apiserver")
	})
	if err != nil {
		t.Fatalf("the API server is not Ready without the egress selector after detach: %v", err)
	}
	body, err := c.Client.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
	if err != nil || strings.TrimSpace(string(body)) != "ok" {
		t.Errorf("/readyz after detach: %v %q", err, body)
	}
}

// TestTunnelThroughNAT: on a master made by kubeadm init, addon (tunnel on,
// the default) points the API server at Konnectivity; an edge host behind
// NAT joins; the control plane cannot dial its kubelet, yet kubectl logs,
// exec (a 10 MB file, byte for byte), port-forward and the node proxy reach
// it through the tunnel. Then the edge agent is taken away (a clear error)
// and brought back, the link is cut and restored, and detach puts every
// master manifest back byte for byte with the API server Ready.
func TestTunnelThroughNAT(t *testing.T) {
	e := setupTunnel(t)
	c, h, pod, masterPod, paths, agentTar := e.c, e.h, e.edgePod, e.masterPod, e.paths, e.agentTar
	logs, stderr, err := kubectl(t, c, "logs", "-n", tunnelNS, pod.Name)
	if err != nil || !strings.Contains(logs, "tunnelprobe ready") {
		t.Errorf("kubectl logs through the tunnel: %v\nstdout: %s\nstderr: %s", err, logs, stderr)
	}
	out, stderr, err := kubectl(t, c, "exec", "-n", tunnelNS, pod.Name, "--", "cat", "/data/big")
	if err != nil {
		t.Errorf("kubectl exec cat through the tunnel: %v\n%s", err, stderr)
	} else if s := sha256.Sum256([]byte(out)); len(out) != tunnelProbeSize || hex.EncodeToString(s[:]) != probeFileSHA(tunnelProbeSize) {
		t.Errorf("kubectl exec cat through the tunnel gave %d bytes (sha256 %x), want the probe's %d bytes", len(out), s, tunnelProbeSize)
	}
	body, err := portForwardGET(t, c, tunnelNS, pod.Name, 8080)
	if err != nil || body != "tunnelprobe\n" {
		t.Errorf("kubectl port-forward through the tunnel: %v, body %q", err, body)
	}

	// The master's own pod, through the cloud agent (its node's agent).
	if logs, stderr, err := kubectl(t, c, "logs", "-n", tunnelNS, masterPod.Name); err != nil || !strings.Contains(logs, "tunnelprobe ready") {
		t.Errorf("kubectl logs of the master's pod through the cloud agent: %v\n%s", err, stderr)
	}

	t.Run("edge agent gone, then back", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*tunnelWait)
		defer cancel()
		tag, err := os.ReadFile(filepath.Join(paths.Images, "proxy-agent.tag"))
		must(t, err)
		// Without its image (no registry) the kubelet cannot start the
		// agent again once it is stopped: it stays gone.
		if _, stderr, err := h.Exec(ctx, "crictl", "rmi", strings.TrimSpace(string(tag))); err != nil {
			t.Fatalf("remove the agent image on %s: %v\n%s", h.Name, err, stderr)
		}
		id, _, err := h.Exec(ctx, "crictl", "ps", "-q", "--name", "konnectivity-agent")
		must(t, err)
		if _, stderr, err := h.Exec(ctx, "crictl", "stop", strings.TrimSpace(id)); err != nil {
			t.Fatalf("stop the edge agent: %v\n%s", err, stderr)
		}
		var last error
		err = testenv.Poll(ctx, 500*time.Millisecond, func(ctx context.Context) (bool, error) {
			_, last = nodeProxyHealthz(ctx, c.Client, h.Name, 10*time.Second)
			return last != nil, nil
		})
		if err != nil {
			t.Fatalf("the node proxy to %s still answers with its agent gone", h.Name)
		}
		t.Logf("node proxy with the edge agent gone: %v", last)
		if !strings.Contains(last.Error(), h.IP().String()) {
			t.Errorf("the error with the edge agent gone does not name the node's address %s: %v", h.IP(), last)
		}
		if out, stderr, err := kubectl(t, c, "logs", "-n", tunnelNS, pod.Name); err == nil || !strings.Contains(stderr, h.IP().String()) {
			t.Errorf("kubectl logs with the edge agent gone: %v, stderr %q, stdout %q; want an error naming %s", err, stderr, out, h.IP())
		} else {
			t.Logf("kubectl logs with the edge agent gone: %s", strings.TrimSpace(stderr))
		}
		must(t, h.ImportImage(ctx, agentTar))
		restartEdgeAgent(t, c, h.Name)
		took := waitNodeProxy(t, c, h.Name, "the edge agent back")
		t.Logf("the edge agent back: the node proxy answers %s after its new pod was made", took.Round(time.Millisecond))
		if logs, stderr, err := kubectl(t, c, "logs", "-n", tunnelNS, pod.Name); err != nil || !strings.Contains(logs, "tunnelprobe ready") {
			t.Errorf("kubectl logs with the edge agent back: %v\n%s", err, stderr)
		}
	})

	t.Run("link cut and restored", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*tunnelWait)
		defer cancel()
		// "cannot connect once" is what the agent logs for each failed
		// dial to the proxy server: it lost the tunnel and redials.
		redials := func() int {
			out, _, _ := h.Exec(ctx, "sh", "-c", "cat /var/log/pods/edge-system_konnectivity-agent-edge-*/konnectivity-agent/*.log")
			return strings.Count(out, "cannot connect once")
		}
		before := redials()
		must(t, h.Link().Cut(ctx))
		cut := time.Now()
		restored := false
		defer func() {
			if !restored {
				_ = h.Link().Restore(context.Background())
			}
		}()
		err := testenv.Poll(ctx, time.Second, func(ctx context.Context) (bool, error) { return redials() > before, nil })
		if err != nil {
			t.Fatalf("the edge agent did not notice the cut link within %s", 2*tunnelWait)
		}
		noticed := time.Since(cut)
		if _, err := nodeProxyHealthz(ctx, c.Client, h.Name, 10*time.Second); err == nil {
			t.Errorf("the node proxy to %s answered with its link cut", h.Name)
		}
		must(t, h.Link().Restore(ctx))
		restored = true
		took := waitNodeProxy(t, c, h.Name, "link restored")
		t.Logf("link cut: the agent noticed after %s (keepalive 30s); restored: the node proxy answers again after %s", noticed.Round(time.Millisecond), took.Round(time.Millisecond))
		if body, err := portForwardGET(t, c, tunnelNS, pod.Name, 8080); err != nil || body != "tunnelprobe\n" {
			t.Errorf("kubectl port-forward after the link came back: %v, body %q", err, body)
		}
	})

	t.Run("detach restores the master", func(t *testing.T) {
		e.detach(t)
		// The master's pod, now dialled directly.
		if logs, stderr, err := kubectl(t, c, "logs", "-n", tunnelNS, masterPod.Name); err != nil || !strings.Contains(logs, "tunnelprobe ready") {
			t.Errorf("kubectl logs of the master's pod after detach: %v\n%s", err, stderr)
		}
	})
}

// BenchmarkTunnel gives the figures: `kubectl exec -- cat` of the
// probe's 10 MiB file and `kubectl logs` of its one-line log, on the edge
// behind NAT through the tunnel and on the master through the cloud agent,
// then, after detach, on the master dialled directly (the baseline). One
// set-up for all (a kubeadm master, addon, a join: about 3 minutes); each
// op is one kubectl run from this machine.
//
//	EDGEADM_E2E=1 flock /tmp/e2e.lock go test -p 1 -count=1 -run '^$' -bench BenchmarkTunnel -benchtime 5x ./test/e2e
func BenchmarkTunnel(b *testing.B) {
	e := setupTunnel(b)
	run := func(bytes int64, args ...string) func(*testing.B) {
		return func(b *testing.B) {
			b.SetBytes(bytes)
			for b.Loop() {
				if _, stderr, err := kubectl(b, e.c, args...); err != nil {
					b.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, stderr)
				}
			}
		}
	}
	cat := func(pod string) func(*testing.B) {
		return run(tunnelProbeSize, "exec", "-n", tunnelNS, pod, "--", "cat", "/data/big")
	}
	logs := func(pod string) func(*testing.B) { return run(0, "logs", "-n", tunnelNS, pod) }
	b.Run("exec-cat-10MiB/edge-tunnel", cat(e.edgePod.Name))
	b.Run("exec-cat-10MiB/master-cloud-agent", cat(e.masterPod.Name))
	b.Run("logs/edge-tunnel", logs(e.edgePod.Name))
	b.Run("logs/master-cloud-agent", logs(e.masterPod.Name))
	e.detach(b)
	b.Run("exec-cat-10MiB/master-direct", cat(e.masterPod.Name))
	b.Run("logs/master-direct", logs(e.masterPod.Name))
}
