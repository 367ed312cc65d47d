package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	edgev1 "github.com/edgeadm/edgeadm/pkg/apis/edge/v1alpha1"
	"github.com/edgeadm/edgeadm/pkg/edgecontroller"
	"github.com/edgeadm/edgeadm/test/testenv"
)

// The edge-controller against a real control plane and a real joined edge
// node. It runs as a process on the build machine with the admin kubeconfig:
// the cluster has no cloud worker to run its Deployment yet.

const (
	ecGrace = 10 * time.Second
	// The pod's unreachable/not-ready toleration: the outage below lasts
	// longer than the controller-manager's node-monitor grace period (50s)
	// plus this, so without cover the pod would be evicted.
	ecToleration = 20 * time.Second
	// kube-controller-manager's default --node-monitor-grace-period in 1.37.
	nodeMonitorGrace = 50 * time.Second
)

var (
	ecBuildOnce sync.Once
	ecBin       string
	ecBuildErr  error
)

func edgeControllerBin(t *testing.T) string {
	t.Helper()
	ecBuildOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
		defer cancel()
		ecBin = filepath.Join(binDir, "edge-controller")
		cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", ecBin, "github.com/edgeadm/edgeadm/cmd/edge-controller")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		out, err := cmd.CombinedOutput()
		if err != nil {
			ecBuildErr = fmt.Errorf("go build edge-controller: %w\n%s", err, out)
		}
	})
	if ecBuildErr != nil {
		t.Fatal(ecBuildErr)
	}
	return ecBin
}

// ecProc is one edge-controller process started by the test.
type ecProc struct {
	cmd  *exec.Cmd
	log  *bytes.Buffer
	done chan struct{}
}

func startEdgeController(t *testing.T, c *testenv.Cluster, maxDisconnect time.Duration) *ecProc {
	t.Helper()
	var log bytes.Buffer
	cmd := exec.Command(edgeControllerBin(t), "--kubeconfig", c.AdminKubeconfig,
		"--grace-period", ecGrace.String(), "--max-disconnect", maxDisconnect.String(),
		"--lease-renew-interval", "2s", "--status-update-interval", "5s",
		"--leader-elect-lease-duration", "4s", "--leader-elect-renew-deadline", "3s", "--leader-elect-retry-period", "1s", "-v", "1")
	w := &lockedWriter{b: &log}
	cmd.Stdout, cmd.Stderr = w, w
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &ecProc{cmd: cmd, log: &log, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			w.mu.Lock()
			t.Logf("edge-controller (pid %d) log:\n%s", cmd.Process.Pid, tail(log.String(), 60))
			w.mu.Unlock()
		}
	})
	return p
}

type lockedWriter struct {
	mu sync.Mutex
	b  *bytes.Buffer
}

func (w *lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

// kill ends this process (by its PID) and waits for it, bounded.
func (p *ecProc) kill() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
	}
}

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func getEdgeNode(ctx context.Context, dyn dynamic.Interface, name string) (*edgev1.EdgeNode, error) {
	u, err := dyn.Resource(edgev1.Resource).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, err
	}
	en := &edgev1.EdgeNode{}
	return en, runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, en)
}

func enReady(en *edgev1.EdgeNode) metav1.Condition {
	for _, c := range en.Status.Conditions {
		if c.Type == edgev1.ConditionReady {
			return c
		}
	}
	return metav1.Condition{}
}

// waitEdgeNode polls the EdgeNode until cond holds, bounded.
func waitEdgeNode(t *testing.T, dyn dynamic.Interface, name string, timeout time.Duration, what string, cond func(*edgev1.EdgeNode) bool) *edgev1.EdgeNode {
	t.Helper()
	var last *edgev1.EdgeNode
	err := wait.PollUntilContextTimeout(context.Background(), 250*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		en, err := getEdgeNode(ctx, dyn, name)
		if err != nil {
			return false, nil
		}
		last = en
		return cond(en), nil
	})
	if err != nil {
		t.Fatalf("EdgeNode %s: not %s within %s (last: %+v)", name, what, timeout, last)
	}
	return last
}

func nodeReadyCond(n *corev1.Node) corev1.NodeCondition {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c
		}
	}
	return corev1.NodeCondition{}
}

func covered(n *corev1.Node) bool {
	c := nodeReadyCond(n)
	return n.Annotations[edgecontroller.CoveredByAnnotation] == edgecontroller.Identity &&
		c.Status == corev1.ConditionTrue && c.Reason == edgecontroller.ReasonCovering
}

// runTolerantPod runs a pause pod on node that tolerates an unreachable or
// not-ready node for ecToleration only.
func runTolerantPod(t *testing.T, client kubernetes.Interface, node, image string) *corev1.Pod {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), podRunTimeout)
	defer cancel()
	no, zero, secs := false, int64(0), int64(ecToleration/time.Second)
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "covered-" + node, Namespace: metav1.NamespaceDefault},
		Spec: corev1.PodSpec{
			NodeName: node, AutomountServiceAccountToken: &no, TerminationGracePeriodSeconds: &zero,
			Containers: []corev1.Container{{Name: "pause", Image: image, ImagePullPolicy: corev1.PullNever}},
			Tolerations: []corev1.Toleration{
				{Key: corev1.TaintNodeUnreachable, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute, TolerationSeconds: &secs},
				{Key: corev1.TaintNodeNotReady, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute, TolerationSeconds: &secs},
			},
		},
	}
	pods := client.CoreV1().Pods(metav1.NamespaceDefault)
	if _, err := pods.Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var last *corev1.Pod
	err := wait.PollUntilContextTimeout(ctx, 500*time.Millisecond, podRunTimeout, true, func(ctx context.Context) (bool, error) {
		p, err := pods.Get(ctx, pod.Name, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		last = p
		return p.Status.Phase == corev1.PodRunning, nil
	})
	if err != nil {
		t.Fatalf("pod %s did not run within %s: %+v", pod.Name, podRunTimeout, last)
	}
	return last
}

func TestEdgeControllerCoversDisconnectedNode(t *testing.T) {
	e := newJoinEnv(t, testenv.ControlPlaneOptions{Flavour: testenv.Bare}, "edge-ctl")
	c, h := e.c, e.h
	if r := edgeadmIn(t, h, nil, e.joinArgs()...); r.Code != 0 {
		t.Fatalf("join: exit %d\nstdout: %s\nstderr: %s", r.Code, r.Stdout, r.Stderr)
	}
	watchNode(t, c.Client, h.Name, nodeReadyTimeout, ready)
	dyn, err := dynamic.NewForConfig(c.RESTConfig)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	nodes := c.Client.CoreV1().Nodes()

	// A node without the edge label: never an EdgeNode, never covered.
	cloud := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "cloud-worker"}}
	if _, err := nodes.Create(ctx, cloud, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	ctl := startEdgeController(t, c, 10*time.Minute)
	en := waitEdgeNode(t, dyn, h.Name, time.Minute, "Ready", func(en *edgev1.EdgeNode) bool {
		r := enReady(en)
		return r.Status == metav1.ConditionTrue && r.Reason == edgev1.ReasonKubeletReporting && en.Status.LastHeartbeatTime != nil
	})
	if en.Status.NodeInfo.KubeletVersion == "" || en.Status.NodeInfo.Architecture == "" || len(en.Status.NodeInfo.Addresses) == 0 {
		t.Errorf("nodeInfo = %+v", en.Status.NodeInfo)
	}
	if len(en.OwnerReferences) != 1 || en.OwnerReferences[0].Kind != "Node" {
		t.Errorf("ownerReferences = %+v", en.OwnerReferences)
	}
	pod := runTolerantPod(t, c.Client, h.Name, e.pauseRef)

	// Cut the link: the EdgeNode says NotReady within the grace period; the
	// Node stays Ready, visibly spoken for.
	if err := h.Link().Cut(ctx); err != nil {
		t.Fatal(err)
	}
	cut := time.Now()
	en = waitEdgeNode(t, dyn, h.Name, ecGrace+5*time.Second, "NodeDisconnected", func(en *edgev1.EdgeNode) bool {
		r := enReady(en)
		return r.Status == metav1.ConditionFalse && r.Reason == edgev1.ReasonNodeDisconnected && en.Status.CoveredSince != nil
	})
	t.Logf("EdgeNode NotReady %s after the cut", time.Since(cut).Round(time.Millisecond))
	if en.Status.DisconnectedSince == nil || en.Status.DisconnectedSince.Time.After(cut) {
		t.Errorf("disconnectedSince = %v, cut at %v", en.Status.DisconnectedSince, cut)
	}
	coveredSince := en.Status.CoveredSince.DeepCopy()
	watchNode(t, c.Client, h.Name, 15*time.Second, covered)

	// Kill the controller mid-outage; a new one picks up the same state and
	// keeps covering.
	ctl.kill()
	restarted := time.Now()
	ctl = startEdgeController(t, c, 10*time.Minute)
	err = wait.PollUntilContextTimeout(ctx, 500*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		l, err := c.Client.CoordinationV1().Leases("kube-node-lease").Get(ctx, h.Name, metav1.GetOptions{})
		return err == nil && l.Spec.RenewTime != nil && l.Spec.RenewTime.After(restarted) && !edgecontroller.KubeletRenewed(l), nil
	})
	if err != nil {
		t.Fatalf("the restarted controller does not renew the node's Lease: %v", err)
	}
	if en, err := getEdgeNode(ctx, dyn, h.Name); err != nil || !en.Status.CoveredSince.Equal(coveredSince) || enReady(en).Reason != edgev1.ReasonNodeDisconnected {
		t.Errorf("after a restart: %+v (%v), coveredSince was %v", en, err, coveredSince)
	}

	// Hold the outage past the node monitor's grace period plus the pod's
	// toleration: the Node stays Ready, untainted, and the pod stays bound.
	hold := cut.Add(nodeMonitorGrace + ecToleration + 10*time.Second)
	for time.Now().Before(hold) {
		pctx, cancel := context.WithDeadline(ctx, hold)
		_ = wait.PollUntilContextCancel(pctx, time.Second, true, func(ctx context.Context) (bool, error) {
			n, err := nodes.Get(ctx, h.Name, metav1.GetOptions{})
			if err != nil {
				return false, nil
			}
			if !covered(n) {
				t.Fatalf("%s into the outage the Node is not covered: Ready %+v, annotations %v", time.Since(cut), nodeReadyCond(n), n.Annotations)
			}
			for _, taint := range n.Spec.Taints {
				if taint.Key == corev1.TaintNodeUnreachable || taint.Key == corev1.TaintNodeNotReady {
					t.Fatalf("%s into the outage the Node is tainted %v", time.Since(cut), taint)
				}
			}
			p, err := c.Client.CoreV1().Pods(pod.Namespace).Get(ctx, pod.Name, metav1.GetOptions{})
			if err != nil || p.DeletionTimestamp != nil {
				t.Fatalf("%s into the outage the pod is being evicted: %v %+v", time.Since(cut), err, p)
			}
			return false, nil
		})
		cancel()
	}
	t.Logf("outage held %s: Node Ready, pod bound", time.Since(cut).Round(time.Second))

	// Link back: the kubelet reports again and takes over at once.
	if err := h.Link().Restore(ctx); err != nil {
		t.Fatal(err)
	}
	restored := time.Now()
	waitEdgeNode(t, dyn, h.Name, 90*time.Second, "Ready again", func(en *edgev1.EdgeNode) bool {
		r := enReady(en)
		return r.Status == metav1.ConditionTrue && r.Reason == edgev1.ReasonKubeletReporting && en.Status.CoveredSince == nil
	})
	t.Logf("EdgeNode Ready %s after the link came back", time.Since(restored).Round(time.Millisecond))
	watchNode(t, c.Client, h.Name, 15*time.Second, func(n *corev1.Node) bool {
		_, annotated := n.Annotations[edgecontroller.CoveredByAnnotation]
		return !annotated
	})

	// Past --max-disconnect the controller stops covering and the node
	// lifecycle controller marks the Node NotReady.
	ctl.kill()
	const maxDisconnect = 20 * time.Second
	startEdgeController(t, c, maxDisconnect)
	if err := h.Link().Cut(ctx); err != nil {
		t.Fatal(err)
	}
	cut = time.Now()
	waitEdgeNode(t, dyn, h.Name, maxDisconnect+15*time.Second, "MaxDisconnectExceeded", func(en *edgev1.EdgeNode) bool {
		return enReady(en).Reason == edgev1.ReasonMaxDisconnectExceeded
	})
	watchNode(t, c.Client, h.Name, nodeMonitorGrace+30*time.Second, func(n *corev1.Node) bool {
		_, annotated := n.Annotations[edgecontroller.CoveredByAnnotation]
		return !annotated && nodeReadyCond(n).Status != corev1.ConditionTrue
	})
	t.Logf("Node NotReady %s after the second cut (max-disconnect %s)", time.Since(cut).Round(time.Second), maxDisconnect)

	// The non-edge node was never looked at.
	if _, err := getEdgeNode(ctx, dyn, "cloud-worker"); !apierrors.IsNotFound(err) {
		t.Errorf("EdgeNode for the non-edge node: %v", err)
	}
	if n, err := nodes.Get(ctx, "cloud-worker", metav1.GetOptions{}); err != nil || n.Annotations[edgecontroller.CoveredByAnnotation] != "" {
		t.Errorf("non-edge node: %v %v", err, n.Annotations)
	}

	// Node deleted: EdgeNode gone.
	if err := nodes.Delete(ctx, h.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	err = wait.PollUntilContextTimeout(ctx, 250*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		_, err := getEdgeNode(ctx, dyn, h.Name)
		return apierrors.IsNotFound(err), nil
	})
	if err != nil {
		t.Errorf("EdgeNode %s kept after its Node was deleted", h.Name)
	}
}
