package manifests

import (
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

func render(t *testing.T) []*unstructured.Unstructured {
	t.Helper()
	objs, err := Render(Values{ImageRepository: "registry.example/edge", EdgeVersion: "v1.2.3", MasterPublicAddr: "203.0.113.10:7443",
		APIServerPort: 7443, ServiceCIDR: "10.96.0.0/12", ClusterDNS: "10.96.0.10", DNSDomain: "cluster.local"})
	if err != nil {
		t.Fatal(err)
	}
	return objs
}

func find(objs []*unstructured.Unstructured, kind, name string) *unstructured.Unstructured {
	for _, o := range objs {
		if o.GetKind() == kind && o.GetName() == name {
			return o
		}
	}
	return nil
}

func TestRenderEveryObject(t *testing.T) {
	objs := render(t)
	for _, want := range []struct{ kind, name string }{
		{"Namespace", "edge-system"}, {"CustomResourceDefinition", "edgenodes.edge.superedge.io"},
		{"ServiceAccount", "edge-controller"}, {"ClusterRole", "edgeadm:edge-controller"},
		{"ClusterRoleBinding", "edgeadm:edge-controller"}, {"Role", "edge-controller-leader-election"},
		{"RoleBinding", "edge-controller-leader-election"}, {"Deployment", "edge-controller"},
		{"Role", "edgeadm:edge-controller"}, {"RoleBinding", "edgeadm:edge-controller"},
		{"ConfigMap", "edgehub-config"},
		{"ServiceAccount", "edge-coredns"}, {"ClusterRole", "edgeadm:edge-coredns"},
		{"ClusterRoleBinding", "edgeadm:edge-coredns"}, {"ConfigMap", "edge-coredns"},
		{"Role", "edgeadm:edge-coredns-config"}, {"RoleBinding", "edgeadm:edge-coredns-config"},
		{"DaemonSet", "edge-coredns"},
	} {
		if find(objs, want.kind, want.name) == nil {
			t.Errorf("no %s %s", want.kind, want.name)
		}
	}
	for _, o := range objs {
		if o.GetLabels()["app.kubernetes.io/managed-by"] != "edgeadm" {
			t.Errorf("%s %s lacks the managed-by label", o.GetKind(), o.GetName())
		}
		if o.GetKind() == "Secret" {
			t.Errorf("a Secret is rendered: %s", o.GetName())
		}
		// Only edge-controller's node-Lease Role and its binding live elsewhere.
		if ns := o.GetNamespace(); ns != "" && ns != Namespace && (ns != "kube-node-lease" || o.GetName() != "edgeadm:edge-controller") {
			t.Errorf("%s %s in namespace %s", o.GetKind(), o.GetName(), ns)
		}
	}
	d := find(objs, "Deployment", "edge-controller")
	cs, _, _ := unstructured.NestedSlice(d.Object, "spec", "template", "spec", "containers")
	if img := cs[0].(map[string]any)["image"]; img != "registry.example/edge/edge-controller:v1.2.3" {
		t.Errorf("image = %v", img)
	}
	cm := find(objs, "ConfigMap", "edgehub-config")
	hub, _, _ := unstructured.NestedString(cm.Object, "data", "edgehub.yaml")
	for _, want := range []string{"https://kubernetes.default:7443", `"203.0.113.10:7443"`, `"10.96.0.10"`} {
		if !strings.Contains(hub, want) {
			t.Errorf("edgehub.yaml lacks %s:\n%s", want, hub)
		}
	}
}

func TestCRD(t *testing.T) {
	crd := find(render(t), "CustomResourceDefinition", "edgenodes.edge.superedge.io")
	if s, _, _ := unstructured.NestedString(crd.Object, "spec", "scope"); s != "Cluster" {
		t.Errorf("scope = %s", s)
	}
	short, _, _ := unstructured.NestedStringSlice(crd.Object, "spec", "names", "shortNames")
	if len(short) != 1 || short[0] != "en" {
		t.Errorf("shortNames = %v", short)
	}
	vs, _, _ := unstructured.NestedSlice(crd.Object, "spec", "versions")
	v := vs[0].(map[string]any)
	if v["name"] != "v1alpha1" {
		t.Errorf("version = %v", v["name"])
	}
	if _, ok, _ := unstructured.NestedMap(v, "subresources", "status"); !ok {
		t.Error("no status subresource")
	}
	var cols []string
	pc, _, _ := unstructured.NestedSlice(v, "additionalPrinterColumns")
	for _, c := range pc {
		cols = append(cols, c.(map[string]any)["name"].(string))
	}
	if strings.Join(cols, ",") != "Status,Reason,Last Heartbeat,Age" {
		t.Errorf("printer columns = %v", cols)
	}
	status, _, _ := unstructured.NestedMap(v, "schema", "openAPIV3Schema", "properties", "status", "properties")
	for _, f := range []string{"conditions", "lastHeartbeatTime", "disconnectedSince", "coveredSince", "nodeInfo"} {
		if _, ok := status[f]; !ok {
			t.Errorf("status schema lacks %s", f)
		}
	}
}

func TestRenderRejectsMissingValues(t *testing.T) {
	// A typo in a template's field name must fail, not render "<no value>".
	if _, err := Render(Values{}); err != nil {
		t.Fatalf("zero values (defaults filled) should render: %v", err)
	}
}

func TestEdgeCoreDNS(t *testing.T) {
	objs := render(t)
	ds := find(objs, "DaemonSet", "edge-coredns")
	spec, _, _ := unstructured.NestedMap(ds.Object, "spec", "template", "spec")
	if spec["hostNetwork"] != true || spec["dnsPolicy"] != "Default" {
		t.Errorf("hostNetwork %v, dnsPolicy %v: edge coredns answers on the node's IP and forwards to the node's resolver", spec["hostNetwork"], spec["dnsPolicy"])
	}
	if sel, _, _ := unstructured.NestedStringMap(spec, "nodeSelector"); len(sel) != 1 || sel[EdgeNodeLabel] != EdgeNodeLabelValue {
		t.Errorf("nodeSelector = %v, want only edge nodes", sel)
	}
	c := spec["containers"].([]any)[0].(map[string]any)
	if c["image"] != "registry.example/edge/edge-coredns:v1.2.3" {
		t.Errorf("image = %v", c["image"])
	}
	env, _, _ := unstructured.NestedSlice(c, "env")
	if fp, _, _ := unstructured.NestedString(env[0].(map[string]any), "valueFrom", "fieldRef", "fieldPath"); fp != "status.hostIP" {
		t.Errorf("NODE_IP from %q, want status.hostIP", fp)
	}
	if add, _, _ := unstructured.NestedStringSlice(c, "securityContext", "capabilities", "add"); strings.Join(add, ",") != "NET_BIND_SERVICE" {
		t.Errorf("capabilities added: %v, want only NET_BIND_SERVICE", add)
	}

	cm := find(objs, "ConfigMap", EdgeCoreDNSConfigMap)
	data, _, _ := unstructured.NestedStringMap(cm.Object, "data")
	if data[EdgeCoreDNSListenKey] != EdgeCoreDNSListenNode {
		t.Errorf("listen = %q", data[EdgeCoreDNSListenKey])
	}
	for _, want := range []string{"bind {$NODE_IP}", "kubernetes cluster.local in-addr.arpa ip6.arpa", "kubeconfig /etc/edge-coredns/kubeconfig edge-coredns"} {
		if !strings.Contains(data["Corefile"], want) {
			t.Errorf("Corefile lacks %q:\n%s", want, data["Corefile"])
		}
	}
	// Through edgehub, with the pod's own token by path: no secret in the ConfigMap.
	for _, want := range []string{"server: https://127.0.0.1:10261", "tokenFile: /var/run/secrets/kubernetes.io/serviceaccount/token", "certificate-authority: /etc/edgehub/ca.crt"} {
		if !strings.Contains(data["kubeconfig"], want) {
			t.Errorf("kubeconfig lacks %q:\n%s", want, data["kubeconfig"])
		}
	}
	if strings.Contains(data["kubeconfig"], "token:") || strings.Contains(data["kubeconfig"], "-data:") {
		t.Errorf("kubeconfig embeds a credential:\n%s", data["kubeconfig"])
	}

	// Least privilege: list and watch of what the kubernetes plugin reads.
	cr := find(objs, "ClusterRole", "edgeadm:edge-coredns")
	rules, _, _ := unstructured.NestedSlice(cr.Object, "rules")
	var got []string
	for _, r := range rules {
		rm := r.(map[string]any)
		res, _, _ := unstructured.NestedStringSlice(rm, "resources")
		verbs, _, _ := unstructured.NestedStringSlice(rm, "verbs")
		got = append(got, strings.Join(res, "+")+":"+strings.Join(verbs, "+"))
	}
	if strings.Join(got, " ") != "services+namespaces:list+watch endpointslices:list+watch" {
		t.Errorf("edge coredns rules = %v", got)
	}
}
