package e2e

import (
	"archive/tar"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	goruntime "runtime"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/edgeadm/edgeadm/manifests"
	edgev1 "github.com/edgeadm/edgeadm/pkg/apis/edge/v1alpha1"
	"github.com/edgeadm/edgeadm/pkg/edgecontroller"
	"github.com/edgeadm/edgeadm/test/testenv"
)

// The edge-controller against a real control plane, a real edge node joined
// with `edgeadm join` and a real cloud worker (a plain kubelet, no edge
// label). edge-controller runs as the Deployment addon made, from the image
// `make images` built, loaded into the cloud worker.

const (
	// ecGrace is above the kubelet's Lease renew interval (10s) plus
	// edgecontroller.StatusWriteAllowance, so a healthy node never looks silent.
	ecGrace = 15 * time.Second
	// The pod's unreachable/not-ready toleration: the first outage lasts
	// longer than the controller-manager's node-monitor grace period (50s)
	// plus this, so without cover the pod would be evicted.
	ecToleration = 20 * time.Second
	// kube-controller-manager's default --node-monitor-grace-period in 1.37.
	nodeMonitorGrace = 50 * time.Second
	// --max-disconnect of the first outage (never reached) and of the second.
	ecLongMaxDisconnect  = 10 * time.Minute
	ecShortMaxDisconnect = 25 * time.Second
	// ecRolloutTimeout bounds a rollout of edge-controller's Deployment until
	// the new pod leads.
	ecRolloutTimeout = 3 * time.Minute
)

// edgeControllerImage is the image tarball `make images` writes, or the one
// $EDGEADM_EDGE_CONTROLLER_IMAGE names.
func edgeControllerImage(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("EDGEADM_EDGE_CONTROLLER_IMAGE"); p != "" {
		return p
	}
	_, self, _, _ := goruntime.Caller(0)
	p := filepath.Join(filepath.Dir(self), "..", "..", "_output", "images", "edge-controller.tar")
	if _, err := os.Stat(p); err != nil {
		testenv.SkipOrFail(t, "the edge-controller image is not built: run \"make images\", or name a tarball with $EDGEADM_EDGE_CONTROLLER_IMAGE")
	}
	return p
}

// imageRef is the name `ctr images import` gives the image in an OCI layout
// tarball: its index's io.containerd.image.name annotation.
func imageRef(t *testing.T, tarball string) string {
	t.Helper()
	f, err := os.Open(tarball)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("read %s: %v", tarball, err)
		}
		if strings.TrimPrefix(hdr.Name, "./") != "index.json" {
			continue
		}
		var idx struct {
			Manifests []struct {
				Annotations map[string]string `json:"annotations"`
			} `json:"manifests"`
		}
		if err := json.NewDecoder(tr).Decode(&idx); err != nil {
			t.Fatalf("%s: index.json: %v", tarball, err)
		}
		for _, m := range idx.Manifests {
			if ref := m.Annotations["io.containerd.image.name"]; ref != "" {
				return ref
			}
		}
	}
	t.Fatalf("%s: no index.json naming the image (io.containerd.image.name)", tarball)
	return ""
}

// ecDeployment is edge-controller's Deployment, as addon made it, running on
// the cloud worker.
type ecDeployment struct {
	c      *testenv.Cluster
	worker string
	args   []string
	leader *corev1.Pod
	seen   map[types.UID]string // every edge-controller pod seen: its node
}

// deployEdgeController runs addon again with the repository and version of
// the built image, so the Deployment addon makes names exactly that image;
// the cloud worker is joined after it with the image loaded.
func deployEdgeController(t *testing.T, c *testenv.Cluster) (*ecDeployment, string) {
	t.Helper()
	tarball := edgeControllerImage(t)
	ref := imageRef(t, tarball)
	slash := strings.LastIndexByte(ref, '/')
	name, version, ok := strings.Cut(ref[slash+1:], ":")
	if slash < 0 || !ok || name != "edge-controller" {
		t.Fatalf("image %s: want <repository>/edge-controller:<version>", ref)
	}
	if r := RunEdgeadm(t, addonArgs(c, c.AdminKubeconfig, "--image-repository", ref[:slash], "--edge-version", version)...); r.Code != 0 {
		t.Fatalf("addon with the built image: exit %d\n%s", r.Code, r.Stderr)
	}
	dep, err := c.Client.AppsV1().Deployments(manifests.Namespace).Get(context.Background(), "edge-controller", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ctr := dep.Spec.Template.Spec.Containers[0]
	if ctr.Image != ref {
		t.Fatalf("addon's Deployment runs %s, want the built %s", ctr.Image, ref)
	}
	d := &ecDeployment{c: c, args: ctr.Args, seen: map[types.UID]string{}}
	t.Cleanup(func() {
		if t.Failed() {
			d.logs(t)
		}
	})
	return d, tarball
}

// run sets the test's timing flags and maxDisconnect on the Deployment and
// waits until a pod of the new template runs on the cloud worker and leads.
func (d *ecDeployment) run(t *testing.T, maxDisconnect time.Duration) {
	t.Helper()
	args := append(append([]string(nil), d.args...),
		"--grace-period="+ecGrace.String(), "--max-disconnect="+maxDisconnect.String(),
		"--lease-renew-interval=2s", "--status-update-interval=5s",
		"--leader-elect-lease-duration=4s", "--leader-elect-renew-deadline=3s", "--leader-elect-retry-period=1s", "-v=1")
	patch, _ := json.Marshal([]map[string]any{{"op": "replace", "path": "/spec/template/spec/containers/0/args", "value": args}})
	ctx := context.Background()
	if _, err := d.c.Client.AppsV1().Deployments(manifests.Namespace).Patch(ctx, "edge-controller", types.JSONPatchType, patch, metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	d.waitLeader(t, "", "--max-disconnect="+maxDisconnect.String())
}

// kill deletes the leading pod at once (no grace): the ReplicaSet makes a
// new one, which must take over.
func (d *ecDeployment) kill(t *testing.T) {
	t.Helper()
	old := d.leader
	zero := int64(0)
	if err := d.c.Client.CoreV1().Pods(old.Namespace).Delete(context.Background(), old.Name, metav1.DeleteOptions{GracePeriodSeconds: &zero}); err != nil {
		t.Fatal(err)
	}
	d.waitLeader(t, old.Name, "")
}

// waitLeader waits until a running edge-controller pod other than notPod,
// whose args include arg, holds the leader Lease; every pod seen must be on
// the cloud worker.
func (d *ecDeployment) waitLeader(t *testing.T, notPod, arg string) {
	t.Helper()
	ctx := context.Background()
	var why string
	err := wait.PollUntilContextTimeout(ctx, 500*time.Millisecond, ecRolloutTimeout, true, func(ctx context.Context) (bool, error) {
		pods, err := d.c.Client.CoreV1().Pods(manifests.Namespace).List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/name=edge-controller"})
		if err != nil {
			why = err.Error()
			return false, nil
		}
		lease, err := d.c.Client.CoordinationV1().Leases(manifests.Namespace).Get(ctx, "edge-controller", metav1.GetOptions{})
		holder := ""
		if err == nil && lease.Spec.HolderIdentity != nil {
			holder = *lease.Spec.HolderIdentity
		}
		why = fmt.Sprintf("leader %q; pods:", holder)
		for i := range pods.Items {
			p := &pods.Items[i]
			if p.Spec.NodeName != "" {
				d.seen[p.UID] = p.Spec.NodeName
				if p.Spec.NodeName != d.worker {
					t.Fatalf("edge-controller pod %s scheduled on %s, not the cloud worker %s", p.Name, p.Spec.NodeName, d.worker)
				}
			}
			why += fmt.Sprintf(" %s(%s on %q", p.Name, p.Status.Phase, p.Spec.NodeName)
			for _, cs := range p.Status.ContainerStatuses {
				if cs.State.Waiting != nil {
					why += fmt.Sprintf(", waiting: %s %s", cs.State.Waiting.Reason, cs.State.Waiting.Message)
				}
				why += fmt.Sprintf(", %d restarts", cs.RestartCount)
			}
			why += ")"
			if p.Name == notPod || p.DeletionTimestamp != nil || p.Status.Phase != corev1.PodRunning ||
				(arg != "" && !containsString(p.Spec.Containers[0].Args, arg)) {
				continue
			}
			// The leader's identity is its hostname (the pod's name) and PID.
			if strings.HasPrefix(holder, p.Name+"_") {
				d.leader = p.DeepCopy()
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		t.Fatalf("no edge-controller pod leads within %s: %s", ecRolloutTimeout, why)
	}
	t.Logf("edge-controller pod %s leads on %s", d.leader.Name, d.leader.Spec.NodeName)
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// logs prints the end of every edge-controller pod's log.
func (d *ecDeployment) logs(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pods, err := d.c.Client.CoreV1().Pods(manifests.Namespace).List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/name=edge-controller"})
	if err != nil {
		t.Logf("edge-controller pods: %v", err)
		return
	}
	lines := int64(60)
	for _, p := range pods.Items {
		out, err := d.c.Client.CoreV1().Pods(p.Namespace).GetLogs(p.Name, &corev1.PodLogOptions{TailLines: &lines}).DoRaw(ctx)
		t.Logf("edge-controller pod %s (%s on %s) log (%v):\n%s", p.Name, p.Status.Phase, p.Spec.NodeName, err, out)
	}
}

// kubeletRenewals follows a node's Lease and keeps the last renewTime the
// kubelet (not edge-controller) wrote, to microseconds.
type kubeletRenewals struct {
	mu   sync.Mutex
	last time.Time
	stop context.CancelFunc
	done chan struct{}
}

func followKubeletRenewals(t *testing.T, client kubernetes.Interface, node string) *kubeletRenewals {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &kubeletRenewals{stop: cancel, done: make(chan struct{})}
	// A kubelet renewal stays in the Lease for at least the grace period less
	// the write allowance (14s here) before edge-controller overwrites it:
	// polling every 100ms sees each one.
	poll := func(ctx context.Context) {
		l, err := client.CoordinationV1().Leases(corev1.NamespaceNodeLease).Get(ctx, node, metav1.GetOptions{})
		if err != nil || !edgecontroller.KubeletRenewed(l) {
			return
		}
		r.mu.Lock()
		if l.Spec.RenewTime.Time.After(r.last) {
			r.last = l.Spec.RenewTime.Time
		}
		r.mu.Unlock()
	}
	poll(ctx)
	if r.lastRenewal().IsZero() {
		t.Fatalf("node %s: no kubelet renewal of its Lease to follow", node)
	}
	go func() {
		defer close(r.done)
		wait.UntilWithContext(ctx, poll, 100*time.Millisecond)
	}()
	t.Cleanup(r.close)
	return r
}

func (r *kubeletRenewals) lastRenewal() time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.last
}

func (r *kubeletRenewals) close() {
	r.stop()
	<-r.done
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

// waitEdgeNode polls the EdgeNode every 100ms until cond holds, bounded,
// and returns it with the time cond was first seen to hold.
func waitEdgeNode(t *testing.T, dyn dynamic.Interface, name string, timeout time.Duration, what string, cond func(*edgev1.EdgeNode) bool) (*edgev1.EdgeNode, time.Time) {
	t.Helper()
	var last *edgev1.EdgeNode
	var at time.Time
	err := wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		en, err := getEdgeNode(ctx, dyn, name)
		if err != nil {
			return false, nil
		}
		last, at = en, time.Now()
		return cond(en), nil
	})
	if err != nil {
		t.Fatalf("EdgeNode %s: not %s within %s (last: %+v)", name, what, timeout, last)
	}
	return last, at
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

func unreachableNoExecute(n *corev1.Node) bool {
	for _, taint := range n.Spec.Taints {
		if taint.Key == corev1.TaintNodeUnreachable && taint.Effect == corev1.TaintEffectNoExecute {
			return true
		}
	}
	return false
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

// freshConnectionProbe asks the API server's /readyz over a new connection.
// Twice, in full-suite rehearsals on a loaded machine, the cloud worker's
// first request (its bootstrap token) timed out with nothing in the API
// server's or etcd's logs; this tells a stuck shared connection (the probe
// answers) from a stuck API server (it does not) next time.
func freshConnectionProbe(c *testenv.Cluster) string {
	tlsCfg, err := rest.TLSConfigFor(c.RESTConfig)
	if err != nil {
		return "fresh-connection probe: " + err.Error()
	}
	cl := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: tlsCfg, DisableKeepAlives: true}}
	start := time.Now()
	resp, err := cl.Get(c.RESTConfig.Host + "/readyz")
	if err != nil {
		return fmt.Sprintf("fresh-connection probe of /readyz: %v after %s", err, time.Since(start).Round(time.Millisecond))
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	return fmt.Sprintf("fresh-connection probe of /readyz: %s %q after %s", resp.Status, b, time.Since(start).Round(time.Millisecond))
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

	// The cloud worker: a real node without the edge label. It runs
	// edge-controller, is never an EdgeNode, never covered; and with one
	// Ready node the node lifecycle controller is not in its "all nodes
	// down" mode, in which it evicts nothing.
	ctl, image := deployEdgeController(t, c)
	worker := newEdgeHost(t, c, "cloud-worker")
	wctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	if err := testenv.JoinCloudWorker(wctx, c, worker, image); err != nil {
		cancel()
		t.Fatalf("%v\n%s", err, freshConnectionProbe(c))
	}
	cancel()
	ctl.worker = worker.Name
	ctl.run(t, ecLongMaxDisconnect)
	en, _ := waitEdgeNode(t, dyn, h.Name, time.Minute, "Ready", func(en *edgev1.EdgeNode) bool {
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

	// Cut the link: the EdgeNode says NotReady within the grace period,
	// counted from the kubelet's last Lease renewal; the Node stays Ready,
	// visibly spoken for.
	renewals := followKubeletRenewals(t, c.Client, h.Name)
	if err := h.Link().Cut(ctx); err != nil {
		t.Fatal(err)
	}
	cut := time.Now()
	en, notReadyAt := waitEdgeNode(t, dyn, h.Name, ecGrace+5*time.Second, "NodeDisconnected", func(en *edgev1.EdgeNode) bool {
		r := enReady(en)
		return r.Status == metav1.ConditionFalse && r.Reason == edgev1.ReasonNodeDisconnected && en.Status.CoveredSince != nil
	})
	renewals.close()
	lastRenewal := renewals.lastRenewal()
	t.Logf("EdgeNode NotReady %s after the kubelet's last Lease renewal (grace %s; %s after the cut)",
		notReadyAt.Sub(lastRenewal).Round(time.Millisecond), ecGrace, notReadyAt.Sub(cut).Round(time.Millisecond))
	if notReadyAt.Sub(lastRenewal) > ecGrace {
		t.Errorf("EdgeNode NotReady %s after the kubelet's last renewal at %s: past the grace period %s",
			notReadyAt.Sub(lastRenewal), lastRenewal.Format(time.RFC3339Nano), ecGrace)
	}
	if lastRenewal.After(cut) {
		t.Errorf("a kubelet renewal at %s, after the cut at %s", lastRenewal, cut)
	}
	if en.Status.DisconnectedSince == nil || en.Status.DisconnectedSince.Time.After(lastRenewal) {
		t.Errorf("disconnectedSince = %v, last kubelet renewal %v", en.Status.DisconnectedSince, lastRenewal)
	}
	coveredSince := en.Status.CoveredSince.DeepCopy()
	watchNode(t, c.Client, h.Name, 15*time.Second, covered)

	// Kill the controller mid-outage: its pod is deleted at once, the new
	// pod picks up the same state and keeps covering.
	killed := time.Now()
	ctl.kill(t)
	err = wait.PollUntilContextTimeout(ctx, 500*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		l, err := c.Client.CoordinationV1().Leases(corev1.NamespaceNodeLease).Get(ctx, h.Name, metav1.GetOptions{})
		return err == nil && l.Spec.RenewTime != nil && l.Spec.RenewTime.After(killed) && !edgecontroller.KubeletRenewed(l), nil
	})
	if err != nil {
		t.Fatalf("the new edge-controller pod does not renew the node's Lease: %v", err)
	}
	if en, err := getEdgeNode(ctx, dyn, h.Name); err != nil || !en.Status.CoveredSince.Equal(coveredSince) || enReady(en).Reason != edgev1.ReasonNodeDisconnected {
		t.Errorf("after the controller's pod was replaced: %+v (%v), coveredSince was %v", en, err, coveredSince)
	}

	// Hold the outage past the node monitor's grace period plus the pod's
	// toleration: the Node stays Ready, untainted, and the pod stays bound.
	hold := lastRenewal.Add(nodeMonitorGrace + ecToleration + 10*time.Second)
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
	// The kubelet rewrites its own Ready condition at its next status
	// update (every 10s).
	watchNode(t, c.Client, h.Name, 30*time.Second, func(n *corev1.Node) bool {
		_, annotated := n.Annotations[edgecontroller.CoveredByAnnotation]
		return !annotated && nodeReadyCond(n).Reason != edgecontroller.ReasonCovering
	})

	// Past --max-disconnect the controller stops covering: the node
	// lifecycle controller taints the Node unreachable:NoExecute and the pod,
	// which tolerates that for ecToleration only, is evicted.
	ctl.run(t, ecShortMaxDisconnect)
	renewals = followKubeletRenewals(t, c.Client, h.Name)
	if err := h.Link().Cut(ctx); err != nil {
		t.Fatal(err)
	}
	cut = time.Now()
	waitEdgeNode(t, dyn, h.Name, ecShortMaxDisconnect+15*time.Second, "MaxDisconnectExceeded", func(en *edgev1.EdgeNode) bool {
		return enReady(en).Reason == edgev1.ReasonMaxDisconnectExceeded
	})
	renewals.close()
	expired := renewals.lastRenewal().Add(ecShortMaxDisconnect)
	n := watchNode(t, c.Client, h.Name, nodeMonitorGrace+time.Minute, unreachableNoExecute)
	tainted := time.Now()
	if _, annotated := n.Annotations[edgecontroller.CoveredByAnnotation]; annotated || nodeReadyCond(n).Status == corev1.ConditionTrue {
		t.Errorf("tainted Node still covered: Ready %+v, annotations %v", nodeReadyCond(n), n.Annotations)
	}
	err = wait.PollUntilContextTimeout(ctx, 250*time.Millisecond, ecToleration+time.Minute, true, func(ctx context.Context) (bool, error) {
		p, err := c.Client.CoreV1().Pods(pod.Namespace).Get(ctx, pod.Name, metav1.GetOptions{})
		return apierrors.IsNotFound(err) || (err == nil && p.DeletionTimestamp != nil), nil
	})
	if err != nil {
		t.Fatalf("pod %s not evicted within %s of the unreachable taint", pod.Name, ecToleration+time.Minute)
	}
	evicted := time.Now()
	t.Logf("max-disconnect %s ended %s after the second cut; after it: Node tainted unreachable:NoExecute in %s, pod evicted in %s",
		ecShortMaxDisconnect, expired.Sub(cut).Round(time.Millisecond), tainted.Sub(expired).Round(time.Second), evicted.Sub(expired).Round(time.Second))
	if l, err := c.Client.CoordinationV1().Leases(corev1.NamespaceNodeLease).Get(ctx, h.Name, metav1.GetOptions{}); err != nil {
		t.Error(err)
	} else if l.Spec.RenewTime == nil || !l.Spec.RenewTime.Time.Before(expired) {
		t.Errorf("node Lease renewed after max-disconnect ended at %s: %+v", expired, l.Spec)
	}

	// The cloud worker was never looked at.
	if _, err := getEdgeNode(ctx, dyn, worker.Name); !apierrors.IsNotFound(err) {
		t.Errorf("EdgeNode for the cloud worker: %v", err)
	}
	if n, err := nodes.Get(ctx, worker.Name, metav1.GetOptions{}); err != nil {
		t.Error(err)
	} else if n.Annotations[edgecontroller.CoveredByAnnotation] != "" || n.Labels[manifests.EdgeNodeLabel] != "" {
		t.Errorf("cloud worker: annotations %v labels %v", n.Annotations, n.Labels)
	}
	if l, err := c.Client.CoordinationV1().Leases(corev1.NamespaceNodeLease).Get(ctx, worker.Name, metav1.GetOptions{}); err != nil {
		t.Error(err)
	} else if l.Annotations[edgecontroller.RenewedAnnotation] != "" {
		t.Errorf("cloud worker's Lease renewed by edge-controller: annotations %v", l.Annotations)
	}
	for uid, node := range ctl.seen {
		if node != worker.Name {
			t.Errorf("edge-controller pod %s ran on %s", uid, node)
		}
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
