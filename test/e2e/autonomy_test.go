package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/yaml"

	"github.com/edgeadm/edgeadm/test/testenv"
)

// Edge autonomy with edgehub: a joined edge node whose link to the cloud is
// cut keeps its pods through kubelet and containerd restarts and a reboot,
// with everything the kubelet reads served from edgehub's cache; when the
// link is back, what changed in the cloud meanwhile arrives and nothing is
// duplicated.

// Bounds for a loaded 2-core machine (several tests and builds at once).
const (
	autoPodsTimeout    = 4 * time.Minute // pods Running after a join or a scale-up
	autoRebootTimeout  = 6 * time.Minute // pods Running again after a reboot, offline
	autoRestoreTimeout = 4 * time.Minute // Node Ready, new replica, edited ConfigMap after the link returns
	// kubelet's error lines about its API connection in the minute after
	// edgehub restarts. edgehub listens before it opens its cache and ends
	// watches at once when stopping, so connections wait rather than being
	// refused: 0 in the run after that change, where a Lease update that
	// met the old, seconds-long gap logged 8-11. A few are allowed for a
	// request that meets the exec-to-listen instant.
	maxKubeletErrorsAfterEdgeHubRestart = 5
)

const (
	autoApp      = "autonomy"
	autoStatic   = "autonomy-static"
	autoCM       = "autonomy-config"
	autoCMKey    = "greeting"
	criEndpoint  = "unix:///run/containerd/containerd.sock"
	edgeHubInPkg = "bin/edgehub"
)

// requireEdgeHub skips (or fails under EDGEADM_E2E=1) when the package was
// built before cmd/edgehub existed.
func requireEdgeHub(t *testing.T, pkg string) {
	t.Helper()
	if packageManifest(t, pkg).File(edgeHubInPkg) == nil {
		testenv.SkipOrFail(t, "the install package has no bin/edgehub: rebuild it with \"make install-pkg\" now that cmd/edgehub exists")
	}
}

func TestEdgeHubAutonomy(t *testing.T) {
	pkg, _ := installPackage(t)
	requireEdgeHub(t, pkg)
	e := newJoinEnv(t, testenv.ControlPlaneOptions{Flavour: testenv.Bare}, "edge-auto")
	c, h := e.c, e.h
	ctx := context.Background()
	if r := edgeadmIn(t, h, nil, e.joinArgs()...); r.Code != 0 {
		t.Fatalf("join: exit %d\nstdout: %s\nstderr: %s", r.Code, r.Stdout, r.Stderr)
	}
	watchNode(t, c.Client, h.Name, nodeReadyTimeout, ready)
	t.Cleanup(func() {
		if t.Failed() {
			out, _, _ := h.Exec(context.Background(), "journalctl", "-u", "edgehub", "--no-pager", "-n", "60")
			t.Logf("edgehub journal on %s:\n%s", h.Name, out)
		}
	})

	// The kubelet talks to edgehub, with edgehub's CA, as the node.
	kc, err := h.ReadFile("/etc/kubernetes/kubelet.conf")
	if err != nil || !strings.Contains(string(kc), "server: https://127.0.0.1:10261") {
		t.Fatalf("kubelet.conf does not name edgehub (%v):\n%s", err, kc)
	}
	if st := unitActive(t, h, "edgehub.service"); st != "active" {
		t.Fatalf("edgehub.service is %s", st)
	}

	// A Deployment with a mounted ConfigMap, and a static pod.
	cms := c.Client.CoreV1().ConfigMaps(metav1.NamespaceDefault)
	if _, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: autoCM}, Data: map[string]string{autoCMKey: "before the outage"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	deps := c.Client.AppsV1().Deployments(metav1.NamespaceDefault)
	if _, err := deps.Create(ctx, autonomyDeployment(h.Name, e.pauseRef, 2), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	writeStaticPod(t, h, e.pauseRef)
	waitAPIPods(t, c, h.Name, 2, autoPodsTimeout)
	waitCRIPods(t, h, "after the join", 2, autoPodsTimeout)
	waitMountedConfig(t, h, "before the outage", autoPodsTimeout)

	// Cut the link, then restart the kubelet and containerd, all offline.
	if err := h.Link().Cut(ctx); err != nil {
		t.Fatal(err)
	}
	cut := time.Now()
	linkUp := false
	t.Cleanup(func() {
		if !linkUp {
			_ = h.Link().Restore(context.Background())
		}
	})
	if _, stderr, err := h.Exec(ctx, "systemctl", "restart", "containerd.service", "kubelet.service"); err != nil {
		t.Fatalf("restart containerd and kubelet: %v\n%s", err, stderr)
	}
	waitCRIPods(t, h, "after restarting kubelet and containerd offline", 2, autoRebootTimeout)

	// Changes in the cloud during the outage.
	scale := &autoscalingv1.Scale{ObjectMeta: metav1.ObjectMeta{Name: autoApp, Namespace: metav1.NamespaceDefault}, Spec: autoscalingv1.ScaleSpec{Replicas: 3}}
	if _, err := deps.UpdateScale(ctx, autoApp, scale, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	cm, err := cms.Get(ctx, autoCM, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cm.Data[autoCMKey] = "edited during the outage"
	if _, err := cms.Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}

	// Reboot the host with the link still down: containerd starts empty,
	// the kubelet learns its pods from edgehub's cache.
	rctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	err = h.Reboot(rctx)
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	rebooted := time.Now()
	waitCRIPods(t, h, "after a reboot offline", 2, autoRebootTimeout)
	t.Logf("pods Running again %s after the offline reboot (%s into the outage)", time.Since(rebooted).Round(time.Second), time.Since(cut).Round(time.Second))
	// Offline the volume holds what the cache had: the old content.
	waitMountedConfig(t, h, "before the outage", autoPodsTimeout)
	if m := edgeHubMetrics(t, h); m["edgehub_upstream_online"] != 0 {
		t.Errorf("edgehub says it is online with the link cut: %v", m)
	}

	// The link is back: the node reports again, the third replica runs, the
	// edit arrives, nothing is duplicated.
	if err := h.Link().Restore(ctx); err != nil {
		t.Fatal(err)
	}
	linkUp = true
	restored := time.Now()
	watchNode(t, c.Client, h.Name, autoRestoreTimeout, func(n *corev1.Node) bool {
		rc := nodeReadyCond(n)
		return rc.Status == corev1.ConditionTrue && rc.LastHeartbeatTime.After(restored)
	})
	t.Logf("Node Ready %s after the link came back", time.Since(restored).Round(time.Second))
	pods := waitAPIPods(t, c, h.Name, 3, autoRestoreTimeout)
	sandboxes := waitCRIPods(t, h, "after the link came back", 3, autoRestoreTimeout)
	var apiUIDs []string
	for _, p := range pods {
		apiUIDs = append(apiUIDs, string(p.UID))
	}
	slices.Sort(apiUIDs)
	if !slices.Equal(apiUIDs, sandboxes) {
		t.Errorf("running sandboxes are of pods %v, the API has %v", sandboxes, apiUIDs)
	}
	waitMountedConfig(t, h, "edited during the outage", autoRestoreTimeout)

	// edgehub restarted while joined: the node stays Ready, the kubelet
	// keeps renewing its Lease through the new edgehub, and logs no storm.
	since := hostNow(t, h)
	restart := time.Now()
	if _, stderr, err := h.Exec(ctx, "systemctl", "restart", "edgehub.service"); err != nil {
		t.Fatalf("restart edgehub: %v\n%s", err, stderr)
	}
	err = wait.PollUntilContextTimeout(ctx, time.Second, time.Minute, true, func(ctx context.Context) (bool, error) {
		l, err := c.Client.CoordinationV1().Leases("kube-node-lease").Get(ctx, h.Name, metav1.GetOptions{})
		return err == nil && l.Spec.RenewTime != nil && l.Spec.RenewTime.After(restart.Add(time.Second)), nil
	})
	if err != nil {
		t.Errorf("the kubelet did not renew its Lease within a minute of edgehub's restart")
	}
	// Watch the minute after the restart: Ready all along.
	deadline := restart.Add(time.Minute)
	for time.Now().Before(deadline) {
		n, err := c.Client.CoreV1().Nodes().Get(ctx, h.Name, metav1.GetOptions{})
		if err == nil && nodeReadyCond(n).Status != corev1.ConditionTrue {
			t.Errorf("%s after edgehub's restart the Node is not Ready: %+v", time.Since(restart).Round(time.Second), nodeReadyCond(n))
			break
		}
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		<-pctx.Done()
		cancel()
	}
	// Only the kubelet's errors about its API connection (edgehub's
	// address) count: image pulls of other pods fail on their own schedule
	// (this host reaches no registry) and say nothing about the restart.
	var errs []string
	all := kubeletErrors(t, h, since, 60)
	for _, l := range all {
		if strings.Contains(l, "127.0.0.1:10261") {
			errs = append(errs, l)
		}
	}
	t.Logf("kubelet logged %d error lines about its API connection (of %d error lines) in the minute after edgehub restarted", len(errs), len(all))
	if n := len(errs); n > 0 && n <= maxKubeletErrorsAfterEdgeHubRestart {
		t.Logf("those lines:\n%s", strings.Join(errs, "\n"))
	}
	if len(errs) > maxKubeletErrorsAfterEdgeHubRestart {
		t.Errorf("kubelet error storm after edgehub restarted: %d error lines in a minute (bound %d):\n%s",
			len(errs), maxKubeletErrorsAfterEdgeHubRestart, strings.Join(errs, "\n"))
	}
	waitCRIPods(t, h, "after edgehub restarted", 3, autoPodsTimeout)
}

func autonomyDeployment(node, image string, replicas int32) *appsv1.Deployment {
	no, zero := false, int64(0)
	labels := map[string]string{"app": autoApp}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: autoApp, Namespace: metav1.NamespaceDefault},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					NodeSelector:                  map[string]string{corev1.LabelHostname: node},
					AutomountServiceAccountToken:  &no,
					TerminationGracePeriodSeconds: &zero,
					// The outage lasts minutes: without cover (edge-controller is
					// not part of this test) the node lifecycle controller would
					// evict the pods after the default 300s.
					Tolerations: []corev1.Toleration{
						{Key: corev1.TaintNodeUnreachable, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute},
						{Key: corev1.TaintNodeNotReady, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute},
					},
					Containers: []corev1.Container{{
						Name: "pause", Image: image, ImagePullPolicy: corev1.PullNever,
						VolumeMounts: []corev1.VolumeMount{{Name: "config", MountPath: "/config"}},
					}},
					Volumes: []corev1.Volume{{Name: "config", VolumeSource: corev1.VolumeSource{
						ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: autoCM}},
					}}},
				},
			},
		},
	}
}

// writeStaticPod puts a pause pod in the kubelet's staticPodPath.
func writeStaticPod(t *testing.T, h *testenv.EdgeHost, image string) {
	t.Helper()
	cfg, err := h.ReadFile("/var/lib/kubelet/config.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var kc struct {
		StaticPodPath string `json:"staticPodPath"`
	}
	if err := yaml.Unmarshal(cfg, &kc); err != nil || kc.StaticPodPath == "" {
		t.Fatalf("the kubelet has no staticPodPath (%v):\n%s", err, cfg)
	}
	no, zero := false, int64(0)
	pod := &corev1.Pod{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{Name: autoStatic, Namespace: metav1.NamespaceDefault, Labels: map[string]string{"app": autoStatic}},
		Spec: corev1.PodSpec{
			AutomountServiceAccountToken: &no, TerminationGracePeriodSeconds: &zero,
			Containers: []corev1.Container{{Name: "pause", Image: image, ImagePullPolicy: corev1.PullNever}},
		},
	}
	data, err := yaml.Marshal(pod)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.WriteFile(kc.StaticPodPath+"/"+autoStatic+".yaml", data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// waitAPIPods waits until the API shows exactly n Running pods of the
// Deployment on node, none being deleted, and returns them.
func waitAPIPods(t *testing.T, c *testenv.Cluster, node string, n int, timeout time.Duration) []corev1.Pod {
	t.Helper()
	var last []corev1.Pod
	err := wait.PollUntilContextTimeout(context.Background(), time.Second, timeout, true, func(ctx context.Context) (bool, error) {
		l, err := c.Client.CoreV1().Pods(metav1.NamespaceDefault).List(ctx, metav1.ListOptions{LabelSelector: "app=" + autoApp})
		if err != nil {
			return false, nil
		}
		last = l.Items
		if len(l.Items) != n {
			return false, nil
		}
		for _, p := range l.Items {
			if p.Spec.NodeName != node || p.Status.Phase != corev1.PodRunning || p.DeletionTimestamp != nil {
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		var s []string
		for _, p := range last {
			s = append(s, fmt.Sprintf("%s on %q: %s deleting=%v", p.Name, p.Spec.NodeName, p.Status.Phase, p.DeletionTimestamp != nil))
		}
		t.Fatalf("the API does not show %d Running pods of %s on %s within %s: %v", n, autoApp, node, timeout, s)
	}
	return last
}

// criPod is what crictl says about a sandbox.
type criPod struct {
	ID       string `json:"id"`
	State    string `json:"state"`
	Metadata struct {
		Name string `json:"name"`
		UID  string `json:"uid"`
	} `json:"metadata"`
	Labels map[string]string `json:"labels"`
}

type criContainer struct {
	PodSandboxID string `json:"podSandboxId"`
	State        string `json:"state"`
}

func crictl(ctx context.Context, h *testenv.EdgeHost, v any, args ...string) error {
	out, stderr, err := h.Exec(ctx, append([]string{"crictl", "--runtime-endpoint", criEndpoint, "--timeout", "10s"}, args...)...)
	if err != nil {
		return fmt.Errorf("crictl %v: %v: %s", args, err, stderr)
	}
	return json.Unmarshal([]byte(out), v)
}

// waitCRIPods waits until containerd runs exactly n ready sandboxes of the
// Deployment, each with its container running, and the static pod; it
// returns the Deployment's pod UIDs, sorted.
func waitCRIPods(t *testing.T, h *testenv.EdgeHost, when string, n int, timeout time.Duration) []string {
	t.Helper()
	var last string
	var uids []string
	err := wait.PollUntilContextTimeout(context.Background(), 2*time.Second, timeout, true, func(ctx context.Context) (bool, error) {
		var pods struct {
			Items []criPod `json:"items"`
		}
		var ctrs struct {
			Containers []criContainer `json:"containers"`
		}
		if err := crictl(ctx, h, &pods, "pods", "--state", "ready", "-o", "json"); err != nil {
			last = err.Error()
			return false, nil
		}
		if err := crictl(ctx, h, &ctrs, "ps", "--state", "running", "-o", "json"); err != nil {
			last = err.Error()
			return false, nil
		}
		running := map[string]bool{}
		for _, c := range ctrs.Containers {
			running[c.PodSandboxID] = true
		}
		uids = nil
		static := 0
		var seen []string
		for _, p := range pods.Items {
			seen = append(seen, fmt.Sprintf("%s(%s, container running %v)", p.Metadata.Name, p.State, running[p.ID]))
			if !running[p.ID] {
				continue
			}
			switch p.Labels["app"] {
			case autoApp:
				uids = append(uids, p.Metadata.UID)
			case autoStatic:
				static++
			}
		}
		last = strings.Join(seen, ", ")
		return len(uids) == n && static == 1, nil
	})
	if err != nil {
		t.Fatalf("%s: containerd does not run %d pods of %s and the static pod within %s; last: %s", when, n, autoApp, timeout, last)
	}
	slices.Sort(uids)
	if len(slices.Compact(slices.Clone(uids))) != len(uids) {
		t.Errorf("%s: a pod runs twice: %v", when, uids)
	}
	return uids
}

// waitMountedConfig waits until every mounted copy of the ConfigMap (one
// per pod of the Deployment, in the kubelet's volume directories) says want.
func waitMountedConfig(t *testing.T, h *testenv.EdgeHost, want string, timeout time.Duration) {
	t.Helper()
	var last string
	err := wait.PollUntilContextTimeout(context.Background(), 2*time.Second, timeout, true, func(ctx context.Context) (bool, error) {
		out, stderr, err := h.Exec(ctx, "sh", "-c", "for f in /var/lib/kubelet/pods/*/volumes/kubernetes.io~configmap/config/"+autoCMKey+"; do printf '%s\\n' \"$(cat \"$f\")\"; done")
		if err != nil {
			last = stderr
			return false, nil
		}
		last = out
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) == 0 || lines[0] == "" {
			return false, nil
		}
		for _, l := range lines {
			if l != want {
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		t.Fatalf("the mounted ConfigMap does not say %q within %s; it says:\n%s", want, timeout, last)
	}
}

func unitActive(t *testing.T, h *testenv.EdgeHost, unit string) string {
	t.Helper()
	out, _, _ := h.Exec(context.Background(), "systemctl", "is-active", unit)
	return strings.TrimSpace(out)
}

// edgeHubMetrics reads edgehub's Prometheus metrics inside the host, summed
// by name (labels dropped).
func edgeHubMetrics(t *testing.T, h *testenv.EdgeHost) map[string]float64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// bash's /dev/tcp: the host need not have curl.
	out, stderr, err := h.Exec(ctx, "bash", "-c", `exec 3<>/dev/tcp/127.0.0.1/10262 && printf 'GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' >&3 && cat <&3`)
	if err != nil || !strings.HasPrefix(out, "HTTP/1.0 200") {
		t.Fatalf("edgehub /metrics: %v: %s%s", err, stderr, out)
	}
	m := map[string]float64{}
	for _, l := range strings.Split(out, "\n") {
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		f := strings.Fields(l)
		if len(f) < 2 {
			continue
		}
		name, _, _ := strings.Cut(f[0], "{")
		v, err := strconv.ParseFloat(f[1], 64)
		if err == nil {
			m[name] += v
		}
	}
	return m
}

func hostNow(t *testing.T, h *testenv.EdgeHost) string {
	t.Helper()
	out, _, err := h.Exec(context.Background(), "date", "+%s")
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(out)
}

var klogError = regexp.MustCompile(`^E\d{4} `)

// kubeletErrors are the kubelet's klog error lines in the seconds after
// since (host clock, Unix seconds).
func kubeletErrors(t *testing.T, h *testenv.EdgeHost, since string, seconds int) []string {
	t.Helper()
	s, _ := strconv.ParseInt(since, 10, 64)
	out, _, err := h.Exec(context.Background(), "journalctl", "-u", "kubelet", "--no-pager", "-o", "cat",
		"--since", "@"+since, "--until", "@"+strconv.FormatInt(s+int64(seconds), 10))
	if err != nil {
		t.Fatal(err)
	}
	var errs []string
	for _, l := range strings.Split(out, "\n") {
		if klogError.MatchString(l) {
			errs = append(errs, l)
		}
	}
	return errs
}

// Weak link: latency (a userspace relay, since this kernel has no netem)
// and loss (testenv's Degrade, iptables statistic) between the edge and the
// API server do not make edgehub flap between online and offline.
func TestEdgeHubWeakLink(t *testing.T) {
	pkg, _ := installPackage(t)
	requireEdgeHub(t, pkg)
	e := newJoinEnv(t, testenv.ControlPlaneOptions{Flavour: testenv.Bare}, "edge-weak")
	c, h := e.c, e.h
	ctx := context.Background()
	if r := edgeadmIn(t, h, nil, e.joinArgs()...); r.Code != 0 {
		t.Fatalf("join: exit %d\nstdout: %s\nstderr: %s", r.Code, r.Stdout, r.Stderr)
	}
	watchNode(t, c.Client, h.Name, nodeReadyTimeout, ready)
	t.Cleanup(func() {
		if t.Failed() {
			out, _, _ := h.Exec(context.Background(), "journalctl", "-u", "edgehub", "--no-pager", "-n", "60")
			t.Logf("edgehub journal on %s:\n%s", h.Name, out)
		}
	})

	// The relay listens on the build machine's address in the test network
	// at the API server's port and forwards to the API server, 100ms later
	// each way. The edge host's name for the API server now points at it.
	const oneWay = 100 * time.Millisecond
	port := strconv.Itoa(c.Options.APIServerPort)
	relay := startDelayRelay(t, net.JoinHostPort(c.Net.HostIP.String(), port), c.PublicEndpoint(), oneWay)
	hosts, err := h.ReadFile("/etc/hosts")
	if err != nil {
		t.Fatal(err)
	}
	direct := c.Net.CloudIP.String() + " kubernetes.default\n"
	if !strings.Contains(string(hosts), direct) {
		t.Fatalf("/etc/hosts has no %q:\n%s", direct, hosts)
	}
	viaRelay := strings.Replace(string(hosts), direct, c.Net.HostIP.String()+" kubernetes.default\n", 1)
	if err := h.WriteFile("/etc/hosts", []byte(viaRelay), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.WriteFile("/etc/hosts", hosts, 0o644) })
	restart := time.Now()
	if _, stderr, err := h.Exec(ctx, "systemctl", "restart", "edgehub.service"); err != nil {
		t.Fatalf("restart edgehub: %v\n%s", err, stderr)
	}
	// The kubelet's heartbeat is its Lease, renewed every 10 s; the Node's
	// status is rewritten only when it changes or every 5 minutes, so its
	// LastHeartbeatTime says nothing within this wait.
	if err := wait.PollUntilContextTimeout(ctx, time.Second, nodeReadyTimeout, true, func(ctx context.Context) (bool, error) {
		l, err := c.Client.CoordinationV1().Leases("kube-node-lease").Get(ctx, h.Name, metav1.GetOptions{})
		return err == nil && l.Spec.RenewTime != nil && l.Spec.RenewTime.After(restart), nil
	}); err != nil {
		t.Fatalf("the kubelet's Lease was not renewed through the relay within %s of edgehub's restart: %v", nodeReadyTimeout, err)
	}
	if relay.conns() == 0 {
		t.Fatal("edgehub does not go through the relay")
	}
	if err := h.Degrade(ctx, 0, 5); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Heal(context.Background()) })

	// A few minutes of the node's ordinary traffic (status, Lease, pods'
	// watches) plus a pod created and removed each round.
	before := edgeHubMetrics(t, h)
	const watchFor = 3 * time.Minute
	end := time.Now().Add(watchFor)
	pods := c.Client.CoreV1().Pods(metav1.NamespaceDefault)
	for round := 0; time.Now().Before(end); round++ {
		runPinnedPod(t, c.Client, h.Name, e.pauseRef) // waits until Running, then deletes it
		l, err := c.Client.CoordinationV1().Leases("kube-node-lease").Get(ctx, h.Name, metav1.GetOptions{})
		if err == nil && l.Spec.RenewTime != nil && time.Since(l.Spec.RenewTime.Time) > time.Minute {
			t.Errorf("round %d: the kubelet's Lease was last renewed %s ago", round, time.Since(l.Spec.RenewTime.Time).Round(time.Second))
		}
		_ = wait.PollUntilContextTimeout(ctx, time.Second, podRunTimeout, true, func(ctx context.Context) (bool, error) {
			_, err := pods.Get(ctx, "pinned-"+h.Name, metav1.GetOptions{})
			return err != nil, nil
		})
	}
	after := edgeHubMetrics(t, h)
	seen, dropped, _ := h.LossCounters(ctx)
	t.Logf("weak link for %s: %d relayed connections, %d packets seen, %d dropped; transitions %v -> %v",
		watchFor, relay.conns(), seen, dropped, before["edgehub_upstream_transitions_total"], after["edgehub_upstream_transitions_total"])
	if dropped == 0 {
		t.Error("the loss rule dropped nothing: the link was not degraded")
	}
	if after["edgehub_upstream_transitions_total"] != before["edgehub_upstream_transitions_total"] || after["edgehub_upstream_online"] != 1 {
		t.Errorf("edgehub flapped on a weak link: transitions %v -> %v, online %v",
			before["edgehub_upstream_transitions_total"], after["edgehub_upstream_transitions_total"], after["edgehub_upstream_online"])
	}
}

// delayRelay is a TCP relay run by the test: every chunk is passed on
// oneWay after it arrived, in order, in each direction.
type delayRelay struct {
	mu    sync.Mutex
	count int
}

func (r *delayRelay) conns() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.count
}

func startDelayRelay(t *testing.T, listen, target string, oneWay time.Duration) *delayRelay {
	t.Helper()
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		t.Fatalf("relay: %v", err)
	}
	r := &delayRelay{}
	var wg sync.WaitGroup
	var open sync.Map
	t.Cleanup(func() {
		ln.Close()
		open.Range(func(k, _ any) bool { k.(net.Conn).Close(); return true })
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			out, err := net.DialTimeout("tcp", target, 10*time.Second)
			if err != nil {
				in.Close()
				continue
			}
			r.mu.Lock()
			r.count++
			r.mu.Unlock()
			open.Store(in, true)
			open.Store(out, true)
			wg.Add(2)
			go func() { defer wg.Done(); delayedCopy(out, in, oneWay) }()
			go func() { defer wg.Done(); delayedCopy(in, out, oneWay) }()
		}
	}()
	return r
}

// delayedCopy copies src to dst, each chunk oneWay after it was read; when
// either side ends, both are closed.
func delayedCopy(dst, src net.Conn, oneWay time.Duration) {
	type chunk struct {
		data []byte
		due  time.Time
	}
	q := make(chan chunk, 1024)
	go func() {
		defer close(q)
		for {
			buf := make([]byte, 32<<10)
			n, err := src.Read(buf)
			if n > 0 {
				q <- chunk{buf[:n], time.Now().Add(oneWay)}
			}
			if err != nil {
				return
			}
		}
	}()
	for c := range q {
		// The delay is the point of the relay: it stands in for a slow link.
		time.Sleep(time.Until(c.due))
		if _, err := dst.Write(c.data); err != nil {
			break
		}
	}
	dst.Close()
	src.Close()
}
