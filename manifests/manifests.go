// Package manifests holds the templates of every object "edgeadm addon
// edge-apps" deploys, embedded in the binary, and renders them from typed
// Values with text/template.
//
// Templates lists the files in apply order. Each file holds one or more
// YAML documents; every object must carry the label
// app.kubernetes.io/managed-by=edgeadm (Render checks).
package manifests

import (
	"bytes"
	"embed"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/template"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
)

//go:embed templates/*.yaml
var files embed.FS

// Namespace is where the edge components live.
const Namespace = "edge-system"

// Edge node label, set by join on every edge node.
const (
	EdgeNodeLabel      = "superedge.io/edge-node"
	EdgeNodeLabelValue = "enable"
)

// EdgeCoreDNSConfigMap (in Namespace) holds edge coredns's Corefile and, under
// EdgeCoreDNSListenKey, where it answers; join reads it with the bootstrap
// token to point an edge node's clusterDNS there (docs/addon.md).
const (
	EdgeCoreDNSConfigMap  = "edge-coredns"
	EdgeCoreDNSListenKey  = "listen"
	EdgeCoreDNSListenNode = "node-ip" // the node's own IP, port 53
)

// Image defaults. DefaultImageRepository is where the project publishes the
// edge component images; air-gapped users pass --image-repository.
const DefaultImageRepository = "docker.io/superedge"

// Templates are the template files, in apply order.
var Templates = []string{
	"templates/00-namespace.yaml",
	"templates/10-edgenode-crd.yaml",
	"templates/20-edge-controller-rbac.yaml",
	"templates/30-edge-controller.yaml",
	"templates/40-edgehub-config.yaml",
	"templates/55-edge-coredns.yaml",
	// Slot for later issues, in this order:
	//   "templates/50-tunnel.yaml"      the cloud-edge tunnel (Konnectivity
	//                                   server config and agents; see
	//                                   shared/design/tunnel.md)
	// Add the file under templates/ and its name here; nothing else changes.
}

// Values are what the templates are rendered from.
type Values struct {
	Namespace          string
	ImageRepository    string
	EdgeVersion        string
	MasterPublicAddr   string // host:port edge nodes dial
	APIServerPort      int    // the apiserver's secure port
	ServiceCIDR        string
	ClusterDNS         string
	DNSDomain          string
	KubernetesVersion  string
	EdgeNodeLabel      string
	EdgeNodeLabelValue string
}

// WithDefaults fills the constant values.
func (v Values) WithDefaults() Values {
	if v.Namespace == "" {
		v.Namespace = Namespace
	}
	if v.ImageRepository == "" {
		v.ImageRepository = DefaultImageRepository
	}
	v.EdgeNodeLabel, v.EdgeNodeLabelValue = EdgeNodeLabel, EdgeNodeLabelValue
	return v
}

var funcs = template.FuncMap{
	"json": func(v any) (string, error) {
		b, err := json.Marshal(v)
		return string(b), err
	},
}

// Render renders every template with v and returns the objects in apply order.
func Render(v Values) ([]*unstructured.Unstructured, error) {
	v = v.WithDefaults()
	var out []*unstructured.Unstructured
	for _, name := range Templates {
		raw, err := files.ReadFile(name)
		if err != nil {
			return nil, err
		}
		t, err := template.New(name).Funcs(funcs).Option("missingkey=error").Parse(string(raw))
		if err != nil {
			return nil, fmt.Errorf("parse %s: %w", name, err)
		}
		var buf bytes.Buffer
		if err := t.Execute(&buf, v); err != nil {
			return nil, fmt.Errorf("render %s: %w", name, err)
		}
		objs, err := decode(buf.Bytes())
		if err != nil {
			return nil, fmt.Errorf("decode %s: %w", name, err)
		}
		for _, o := range objs {
			if o.GetLabels()["app.kubernetes.io/managed-by"] != "edgeadm" {
				return nil, fmt.Errorf("%s: %s %s lacks the label app.kubernetes.io/managed-by=edgeadm", name, o.GetKind(), o.GetName())
			}
		}
		out = append(out, objs...)
	}
	return out, nil
}

func decode(b []byte) ([]*unstructured.Unstructured, error) {
	var out []*unstructured.Unstructured
	d := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(b), 4096)
	for {
		var m map[string]any
		if err := d.Decode(&m); err != nil {
			if err == io.EOF {
				return out, nil
			}
			return nil, err
		}
		if len(m) == 0 {
			continue
		}
		u := &unstructured.Unstructured{Object: m}
		if u.GetKind() == "" || u.GetAPIVersion() == "" || strings.TrimSpace(u.GetName()) == "" {
			return nil, fmt.Errorf("a document lacks apiVersion, kind or metadata.name")
		}
		out = append(out, u)
	}
}
