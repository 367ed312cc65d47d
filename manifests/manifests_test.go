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
