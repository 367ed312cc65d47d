package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
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
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"

	"github.com/edgeadm/edgeadm/manifests"
	"github.com/edgeadm/edgeadm/test/testenv"
)

const (
	// ednsProbeDir is where the probe pod writes what it resolved, on the
	// edge host (a hostPath), so the test reads it with the link cut.
	ednsProbeDir = "/var/lib/edgeadm-e2e/dnsprobe"
	// ednsAnswerTimeout bounds the wait for a fresh, right answer.
	ednsAnswerTimeout = 2 * time.Minute
)

// builtImage is a tarball `make images` wrote, or the one $env names.
func builtImage(t *testing.T, name, env string) string {
	t.Helper()
	if p := os.Getenv(env); p != "" {
		return p
	}
	_, self, _, _ := goruntime.Caller(0)
	p := filepath.Join(filepath.Dir(self), "..", "..", "_output", "images", name+".tar")
	if _, err := os.Stat(p); err != nil {
		testenv.SkipOrFail(t, fmt.Sprintf("the %s image is not built: run \"make images\", or name a tarball with $%s", name, env))
	}
	return p
}

// probeImage builds the dnsprobe pod's image (testdata/dnsprobe, static)
// with the builder of `make images`, for this machine's architecture.
func probeImage(t *testing.T) (tarball, ref string) {
	t.Helper()
	_, self, _, _ := goruntime.Caller(0)
	root := filepath.Join(filepath.Dir(self), "..", "..")
	tool := filepath.Join(root, "_output", "images", ".work", "bin", "images-"+goruntime.GOARCH)
	if _, err := os.Stat(tool); err != nil {
		testenv.SkipOrFail(t, "the image builder is not built: run \"make images\"")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "dnsprobe")
	build := exec.Command("go", "build", "-trimpath", "-o", bin, "./test/e2e/testdata/dnsprobe")
	build.Dir, build.Env = root, append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build dnsprobe: %v\n%s", err, out)
	}
	tarball, ref = filepath.Join(dir, "dnsprobe.tar"), "edgeadm.e2e/dnsprobe:e2e"
	out, err := exec.Command(tool, "build", "-o", tarball, "-ref", ref, "-entrypoint", "/dnsprobe",
		"-bin", goruntime.GOARCH+"=/dnsprobe="+bin).CombinedOutput()
	if err != nil {
		t.Fatalf("pack dnsprobe: %v\n%s", err, out)
	}
	return tarball, ref
}

// probeStatus is what testdata/dnsprobe writes.
type probeStatus struct {
	Time       time.Time           `json:"time"`
	ResolvConf string              `json:"resolvConf"`
	Addrs      map[string][]string `json:"addrs"`
	Errors     map[string]string   `json:"errors"`
}

// waitResolved waits until the probe on h reports, from a round started
// after since, every name resolving to want.
func waitResolved(t *testing.T, h *testenv.EdgeHost, since time.Time, want string, names []string, what string) probeStatus {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), ednsAnswerTimeout)
	defer cancel()
	var last probeStatus
	err := testenv.Poll(ctx, 500*time.Millisecond, func(context.Context) (bool, error) {
		b, err := h.ReadFile(ednsProbeDir + "/status.json")
		if err != nil {
			return false, nil
		}
		var st probeStatus
		if json.Unmarshal(b, &st) != nil || !st.Time.After(since) {
			return false, nil
		}
		last = st
		for _, n := range names {
			if !slices.Equal(st.Addrs[n], []string{want}) {
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		t.Fatalf("%s: the pod did not resolve %v to %s within %s; last round: %+v", what, names, want, ednsAnswerTimeout, last)
	}
	return last
}

// coreDNSPodReady waits for the edge coredns pod on node to be Ready and
// returns it.
func coreDNSPodReady(t *testing.T, e *joinEnv, node string) *corev1.Pod {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), podRunTimeout)
	defer cancel()
	var last *corev1.Pod
	err := testenv.Poll(ctx, 500*time.Millisecond, func(ctx context.Context) (bool, error) {
		pods, err := e.c.Client.CoreV1().Pods(manifests.Namespace).List(ctx, metav1.ListOptions{
			LabelSelector: "app.kubernetes.io/name=edge-coredns", FieldSelector: "spec.nodeName=" + node})
		if err != nil || len(pods.Items) != 1 {
			return false, nil
		}
		last = &pods.Items[0]
		for _, c := range last.Status.Conditions {
			if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		// What the container said is on the host: the kubelet keeps it.
		crictl := []string{"crictl", "--runtime-endpoint", "unix:///run/containerd/containerd.sock"}
		id, _, _ := e.h.Exec(context.Background(), append(crictl, "ps", "-a", "-q", "--name", "coredns")...)
		var logs string
		if ids := strings.Fields(id); len(ids) > 0 {
			out, errOut, _ := e.h.Exec(context.Background(), append(crictl, "logs", ids[0])...)
			logs = out + errOut
		}
		t.Fatalf("edge coredns on %s not Ready within %s: phase %s, statuses %+v\nits last log:\n%s",
			node, podRunTimeout, last.Status.Phase, last.Status.ContainerStatuses, logs)
	}
	return last
}

// TestEdgeDNS: addon deploys edge coredns; join points the edge node's
// clusterDNS at the node's IP; a pod on the node resolves a Service's name
// through it; with the link cut, and edge coredns restarted mid-outage (so
// neither its memory nor its cache can answer), the name still resolves,
// from edgehub's cache.
func TestEdgeDNS(t *testing.T) {
	dnsTar := builtImage(t, "edge-coredns", "EDGEADM_EDGE_COREDNS_IMAGE")
	ref := imageRef(t, dnsTar)
	slash := strings.LastIndexByte(ref, '/')
	name, version, ok := strings.Cut(ref[slash+1:], ":")
	if slash < 0 || !ok || name != "edge-coredns" {
		t.Fatalf("image %s: want <repository>/edge-coredns:<version>", ref)
	}
	probeTar, probeRef := probeImage(t)

	e := newJoinEnv(t, testenv.ControlPlaneOptions{Flavour: testenv.Bare}, "edge-dns")
	c, h := e.c, e.h
	ctx := context.Background()
	// addon again, naming the built image, as an operator with a private
	// registry would.
	if r := RunEdgeadm(t, addonArgs(c, c.AdminKubeconfig, "--image-repository", ref[:slash], "--edge-version", version)...); r.Code != 0 {
		t.Fatalf("addon with the built image: exit %d\n%s", r.Code, r.Stderr)
	}
	ds, err := c.Client.AppsV1().DaemonSets(manifests.Namespace).Get(ctx, "edge-coredns", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := ds.Spec.Template.Spec.Containers[0].Image; got != ref {
		t.Fatalf("addon's DaemonSet runs %s, want the built %s", got, ref)
	}

	r := edgeadmIn(t, h, nil, e.joinArgs()...)
	if r.Code != 0 {
		t.Fatalf("join: exit %d\nstdout: %s\nstderr: %s", r.Code, r.Stdout, r.Stderr)
	}
	watchNode(t, c.Client, h.Name, nodeReadyTimeout, ready)
	kc, err := h.ReadFile("/var/lib/kubelet/config.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var kcfg struct {
		ClusterDNS []string `json:"clusterDNS"`
	}
	if err := yaml.Unmarshal(kc, &kcfg); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(kcfg.ClusterDNS, []string{h.IP().String()}) {
		t.Fatalf("the edge node's kubelet has clusterDNS %v, want its own IP %s (edge coredns)", kcfg.ClusterDNS, h.IP())
	}
	// edge coredns reads through edgehub: without it on the node there is
	// nothing to test here yet.
	if _, err := h.ReadFile("/var/lib/edgehub/pki/ca.crt"); err != nil {
		testenv.SkipOrFail(t, "join installed no edgehub on the edge host (/var/lib/edgehub/pki/ca.crt): edge coredns has nothing to read through")
	}

	for _, tarball := range []string{dnsTar, probeTar} {
		if err := h.ImportImage(ctx, tarball); err != nil {
			t.Fatal(err)
		}
	}
	// The pod made before the import is in image-pull back-off: start afresh.
	if err := c.Client.CoreV1().Pods(manifests.Namespace).DeleteCollection(ctx, metav1.DeleteOptions{},
		metav1.ListOptions{LabelSelector: "app.kubernetes.io/name=edge-coredns"}); err != nil {
		t.Fatal(err)
	}
	coreDNSPodReady(t, e, h.Name)

	svc, err := c.Client.CoreV1().Services(metav1.NamespaceDefault).Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "edns-target"},
		Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromInt32(8080)}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	names := []string{"edns-target", "edns-target.default.svc.cluster.local"}
	root, dirType := int64(0), corev1.HostPathDirectoryOrCreate
	probe := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "dnsprobe", Namespace: metav1.NamespaceDefault},
		Spec: corev1.PodSpec{
			NodeName: h.Name,
			// Root only to write into the hostPath the test reads.
			SecurityContext: &corev1.PodSecurityContext{RunAsUser: &root},
			Containers: []corev1.Container{{
				Name: "probe", Image: probeRef, ImagePullPolicy: corev1.PullNever,
				Args:         append([]string{"/out"}, names...),
				VolumeMounts: []corev1.VolumeMount{{Name: "out", MountPath: "/out"}},
			}},
			Volumes: []corev1.Volume{{Name: "out", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: ednsProbeDir, Type: &dirType}}}},
			Tolerations: []corev1.Toleration{
				{Key: corev1.TaintNodeUnreachable, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute},
			},
		},
	}
	if _, err := c.Client.CoreV1().Pods(metav1.NamespaceDefault).Create(ctx, probe, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	online := waitResolved(t, h, time.Time{}, svc.Spec.ClusterIP, names, "link up")
	if !strings.Contains(online.ResolvConf, "nameserver "+h.IP().String()) {
		t.Errorf("the pod's resolv.conf does not name edge coredns on %s:\n%s", h.IP(), online.ResolvConf)
	}
	t.Logf("link up: %v resolve to %s through edge coredns on %s", names, svc.Spec.ClusterIP, h.IP())

	// Cut the link; restart edge coredns so it must list Services afresh,
	// which only edgehub's cache can answer now.
	if err := h.Link().Cut(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Link().Restore(context.Background()) })
	crictl := []string{"crictl", "--runtime-endpoint", "unix:///run/containerd/containerd.sock"}
	id, _, err := h.Exec(ctx, append(crictl, "ps", "-q", "--name", "coredns")...)
	if err != nil || strings.TrimSpace(id) == "" {
		t.Fatalf("find the edge coredns container on %s: %q %v", h.Name, id, err)
	}
	if _, _, err := h.Exec(ctx, append(crictl, "stop", strings.TrimSpace(id))...); err != nil {
		t.Fatalf("stop edge coredns: %v", err)
	}
	restarted := time.Now()
	ctxR, cancel := context.WithTimeout(ctx, ednsAnswerTimeout)
	defer cancel()
	if err := testenv.Poll(ctxR, 500*time.Millisecond, func(ctx context.Context) (bool, error) {
		out, _, err := h.Exec(ctx, append(crictl, "ps", "-q", "--name", "coredns", "--state", "Running")...)
		return err == nil && strings.TrimSpace(out) != "" && strings.TrimSpace(out) != strings.TrimSpace(id), nil
	}); err != nil {
		t.Fatalf("the kubelet did not restart edge coredns during the outage within %s", ednsAnswerTimeout)
	}
	waitResolved(t, h, restarted, svc.Spec.ClusterIP, names, "link cut, edge coredns restarted")
	t.Logf("link cut: %v still resolve to %s after edge coredns restarted offline", names, svc.Spec.ClusterIP)
}

// TestEdgeCoreDNSWithItsRBAC runs the built edge coredns binary with the
// Corefile addon deployed and its ServiceAccount's token against a real API
// server (directly: no edge host, no edgehub), so the Corefile, the plugins
// linked in and the least-privilege ClusterRole are checked together. Its
// forward line is dropped: nothing leaves this machine.
func TestEdgeCoreDNSWithItsRBAC(t *testing.T) {
	_, self, _, _ := goruntime.Caller(0)
	bin := filepath.Join(filepath.Dir(self), "..", "..", "_output", "images", ".work", "bin", "edge-coredns-"+goruntime.GOARCH)
	if _, err := os.Stat(bin); err != nil {
		testenv.SkipOrFail(t, "the edge coredns binary is not built: run \"make images\"")
	}
	c := testenv.NewCluster(t, testenv.ControlPlaneOptions{Flavour: testenv.Bare})
	ctx := context.Background()
	if r := RunEdgeadm(t, addonArgs(c, c.AdminKubeconfig)...); r.Code != 0 {
		t.Fatalf("addon: exit %d\n%s", r.Code, r.Stderr)
	}
	cm, err := c.Client.CoreV1().ConfigMaps(manifests.Namespace).Get(ctx, manifests.EdgeCoreDNSConfigMap, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	tok, err := c.Client.CoreV1().ServiceAccounts(manifests.Namespace).CreateToken(ctx, "edge-coredns", &authnv1.TokenRequest{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	must(t, os.WriteFile(filepath.Join(dir, "token"), []byte(tok.Status.Token), 0o600))
	kubeconfig := strings.NewReplacer(
		"https://127.0.0.1:10261", c.RESTConfig.Host,
		// The API server's certificate lacks the test network address: the
		// name the admin's config verifies, as edgehub's own does for 127.0.0.1.
		"/etc/edgehub/ca.crt", c.CACertPath+"\n    tls-server-name: "+serverName(c),
		"/var/run/secrets/kubernetes.io/serviceaccount/token", filepath.Join(dir, "token"),
	).Replace(cm.Data["kubeconfig"])
	must(t, os.WriteFile(filepath.Join(dir, "kubeconfig"), []byte(kubeconfig), 0o600))
	const port = "10553"
	var lines []string
	for _, l := range strings.Split(cm.Data["Corefile"], "\n") {
		if strings.Contains(l, "forward ") {
			continue
		}
		lines = append(lines, l)
	}
	corefile := strings.NewReplacer(".:53", ".:"+port, "127.0.0.1:10263", "127.0.0.1:10563", "127.0.0.1:10264", "127.0.0.1:10564",
		"/etc/edge-coredns/kubeconfig", filepath.Join(dir, "kubeconfig")).Replace(strings.Join(lines, "\n"))
	must(t, os.WriteFile(filepath.Join(dir, "Corefile"), []byte(corefile), 0o644))

	svc, err := c.Client.CoreV1().Services(metav1.NamespaceDefault).Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "edns-target"},
		Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: 80}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-conf", filepath.Join(dir, "Corefile"))
	cmd.Env = append(os.Environ(), "NODE_IP=127.0.0.1")
	var logs strings.Builder
	cmd.Stdout, cmd.Stderr = &logs, &logs
	must(t, cmd.Start())
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("edge coredns said:\n%s", logs.String())
		}
	})
	r := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "udp", "127.0.0.1:"+port)
	}}
	name := "edns-target.default.svc.cluster.local"
	pctx, cancel := context.WithTimeout(ctx, ednsAnswerTimeout)
	defer cancel()
	var got []string
	if err := testenv.Poll(pctx, 500*time.Millisecond, func(ctx context.Context) (bool, error) {
		got, err = r.LookupHost(ctx, name)
		return err == nil && slices.Equal(got, []string{svc.Spec.ClusterIP}), nil
	}); err != nil {
		t.Fatalf("%s did not resolve to %s within %s: last %v, %v", name, svc.Spec.ClusterIP, ednsAnswerTimeout, got, err)
	}
	if _, err := r.LookupHost(ctx, "nothing-here.default.svc.cluster.local"); err == nil {
		t.Error("a Service that does not exist resolved")
	}
}

func serverName(c *testenv.Cluster) string {
	if n := c.RESTConfig.TLSClientConfig.ServerName; n != "" {
		return n
	}
	return "127.0.0.1"
}
