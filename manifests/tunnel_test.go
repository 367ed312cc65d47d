package manifests

import (
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/yaml"

	"github.com/edgeadm/edgeadm/pkg/tunnel"
)

func tunnelValues() TunnelValues {
	return TunnelValues{Values: Values{ImageRepository: "registry.example/edge", EdgeVersion: "v1.2.3", MasterPublicAddr: "203.0.113.10:7443"},
		KonnectivityImageRepository: "registry.example/mirror", ServerCount: 3, CloudServerHost: "192.168.10.2"}
}

func podSpec(t *testing.T, o *unstructured.Unstructured) corev1.PodSpec {
	t.Helper()
	m, _, _ := unstructured.NestedMap(o.Object, "spec", "template", "spec")
	var s corev1.PodSpec
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(m, &s); err != nil {
		t.Fatal(err)
	}
	return s
}

func TestTunnelServerIdentity(t *testing.T) {
	// The RBAC binds the user whose certificate pkg/tunnel signs.
	if KonnectivityServerUser != tunnel.ServerUser {
		t.Errorf("RBAC binds %s, the kubeconfig is for %s", KonnectivityServerUser, tunnel.ServerUser)
	}
}

func TestTunnelIsNotInTheDefaultTemplates(t *testing.T) {
	for _, n := range append(slices.Clone(TunnelTemplates), TunnelServerPodTemplate) {
		if slices.Contains(Templates, n) {
			t.Errorf("%s is applied by default although --tunnel is off", n)
		}
	}
}

func TestRenderTunnel(t *testing.T) {
	objs, err := RenderTunnel(tunnelValues())
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []struct{ kind, name string }{
		{"ServiceAccount", "konnectivity-agent"}, {"ClusterRoleBinding", "edgeadm:konnectivity-server"},
		{"DaemonSet", "konnectivity-agent-edge"}, {"Deployment", "konnectivity-agent-cloud"},
	} {
		if find(objs, want.kind, want.name) == nil {
			t.Errorf("no %s %s", want.kind, want.name)
		}
	}
	crb := find(objs, "ClusterRoleBinding", "edgeadm:konnectivity-server")
	if r, _, _ := unstructured.NestedString(crb.Object, "roleRef", "name"); r != "system:auth-delegator" {
		t.Errorf("server bound to %s", r)
	}

	edge := podSpec(t, find(objs, "DaemonSet", "konnectivity-agent-edge"))
	if !edge.HostNetwork || edge.NodeSelector[EdgeNodeLabel] != EdgeNodeLabelValue || edge.ServiceAccountName != "konnectivity-agent" {
		t.Errorf("edge agent: hostNetwork %v, nodeSelector %v, SA %s", edge.HostNetwork, edge.NodeSelector, edge.ServiceAccountName)
	}
	c := edge.Containers[0]
	if c.Image != "registry.example/mirror/proxy-agent:v0.36.0" {
		t.Errorf("edge agent image %s", c.Image)
	}
	for _, want := range []string{"--agent-identifiers=ipv4=$(HOST_IP)&host=$(NODE_NAME)", "--keepalive-time=30s",
		"--proxy-server-host=kubernetes.default", "--proxy-server-port=8132"} {
		if !slices.Contains(c.Args, want) {
			t.Errorf("edge agent lacks %s: %v", want, c.Args)
		}
	}
	env := map[string]string{}
	for _, e := range c.Env {
		env[e.Name] = e.ValueFrom.FieldRef.FieldPath
	}
	if env["HOST_IP"] != "status.hostIP" || env["NODE_NAME"] != "spec.nodeName" {
		t.Errorf("edge agent env %v", env)
	}
	checkToken(t, "edge", edge)

	cloud := podSpec(t, find(objs, "Deployment", "konnectivity-agent-cloud"))
	cc := cloud.Containers[0]
	// Its node too, under destHost: the proxy server is Ready only once an
	// agent of its first strategy is connected (upstream's readiness), and
	// addon waits for that before any edge node has joined.
	if !slices.Contains(cc.Args, "--agent-identifiers=default-route=true&ipv4=$(HOST_IP)&host=$(NODE_NAME)") || !slices.Contains(cc.Args, "--proxy-server-host=192.168.10.2") || cloud.HostNetwork {
		t.Errorf("cloud agent args %v, hostNetwork %v", cc.Args, cloud.HostNetwork)
	}
	cenv := map[string]string{}
	for _, e := range cc.Env {
		cenv[e.Name] = e.ValueFrom.FieldRef.FieldPath
	}
	if cenv["HOST_IP"] != "status.hostIP" || cenv["NODE_NAME"] != "spec.nodeName" {
		t.Errorf("cloud agent env %v", cenv)
	}
	checkToken(t, "cloud", cloud)

	// A domain join: edge agents dial the domain the certificate carries.
	v := tunnelValues()
	v.MasterPublicAddr = "api.example.test:6443"
	objs, err = RenderTunnel(v)
	if err != nil {
		t.Fatal(err)
	}
	if args := podSpec(t, find(objs, "DaemonSet", "konnectivity-agent-edge")).Containers[0].Args; !slices.Contains(args, "--proxy-server-host=api.example.test") {
		t.Errorf("domain join: %v", args)
	}
}

func checkToken(t *testing.T, which string, s corev1.PodSpec) {
	t.Helper()
	if len(s.Volumes) != 1 || s.Volumes[0].Projected == nil {
		t.Fatalf("%s agent volumes %+v", which, s.Volumes)
	}
	tok := s.Volumes[0].Projected.Sources[0].ServiceAccountToken
	if tok == nil || tok.Audience != "system:konnectivity-server" || tok.Path != "konnectivity-agent-token" {
		t.Errorf("%s agent token %+v", which, tok)
	}
	if !slices.Contains(s.Containers[0].Args, "--service-account-token-path=/var/run/secrets/tokens/konnectivity-agent-token") {
		t.Errorf("%s agent does not read its token: %v", which, s.Containers[0].Args)
	}
	if sc := s.SecurityContext; sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot {
		t.Errorf("%s agent may run as root", which)
	}
}

// TestTunnelServerPodMatchesTheEgressChange: the server listens on the very
// socket the API server's egress file names, in the folder both mount.
func TestTunnelServerPodMatchesTheEgressChange(t *testing.T) {
	b, err := TunnelServerPod(tunnelValues())
	if err != nil {
		t.Fatal(err)
	}
	pod := &corev1.Pod{}
	if err := yaml.UnmarshalStrict(b, pod); err != nil {
		t.Fatalf("%v\n%s", err, b)
	}
	p := tunnel.DefaultPaths()
	c := pod.Spec.Containers[0]
	for _, want := range []string{
		"--mode=grpc", "--uds-name=" + p.UDSName(), "--delete-existing-uds-file", "--server-port=0", "--agent-port=8132",
		"--proxy-strategies=destHost,defaultRoute", "--server-count=3", "--keepalive-time=30s", "--graceful-shutdown-timeout=15s",
		"--authentication-audience=system:konnectivity-server", "--agent-namespace=edge-system", "--agent-service-account=konnectivity-agent",
	} {
		if !slices.Contains(c.Args, want) {
			t.Errorf("server lacks %s: %v", want, c.Args)
		}
	}
	for _, a := range c.Args {
		if strings.HasPrefix(a, "--proxy-strategies=") && strings.Contains(a, "default,") {
			t.Errorf("the \"default\" strategy picks any agent: %s", a)
		}
	}
	if c.Image != "registry.example/mirror/proxy-server:v0.36.0" || !pod.Spec.HostNetwork || pod.Namespace != "kube-system" {
		t.Errorf("image %s, hostNetwork %v, namespace %s", c.Image, pod.Spec.HostNetwork, pod.Namespace)
	}
	mounted := false
	for _, m := range c.VolumeMounts {
		if m.MountPath == p.UDSDir && !m.ReadOnly {
			mounted = true
		}
	}
	if !mounted {
		t.Errorf("the server does not mount %s writable: %+v", p.UDSDir, c.VolumeMounts)
	}
}
