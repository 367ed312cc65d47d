// Package addon installs the edge components into a cluster: it learns the
// cluster's facts, plans every object (join prerequisites and edge
// components), checks up front that the user may make all of them, then
// creates or applies them and records what it created and adopted in
// kube-system/edgeadm (package state).
package addon

import (
	"fmt"
	"net"
	"strconv"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/edgeadm/edgeadm/manifests"
	"github.com/edgeadm/edgeadm/pkg/addon/joinprep"
	"github.com/edgeadm/edgeadm/pkg/clusterfacts"
	"github.com/edgeadm/edgeadm/pkg/state"
)

// Mode is how an object is written.
type Mode string

const (
	// CreateIfMissing: plain create; an existing object is adopted as it
	// is and never edited (join prerequisites, which kubeadm or the user
	// may already have made).
	CreateIfMissing Mode = "create-if-missing"
	// Apply: server-side apply with field manager edgeadm, force off (edge
	// components). An existing object not made by edgeadm is adopted and
	// left as it is.
	Apply Mode = "apply"
)

// Item is one planned object.
type Item struct {
	Object *unstructured.Unstructured
	Mode   Mode
	// Step groups items for progress lines.
	Step string
}

// Ref is the item's identity as recorded.
func (i Item) Ref() state.Ref {
	return state.Ref{APIVersion: i.Object.GetAPIVersion(), Kind: i.Object.GetKind(), Namespace: i.Object.GetNamespace(), Name: i.Object.GetName()}
}

// Plan is everything addon will write, in order, and the settings it records.
type Plan struct {
	Items  []Item
	Config state.Config
	Notes  []string
}

// Settings are the user's choices.
type Settings struct {
	MasterPublicAddr string // host[:port]; port defaults to the secure port
	ImageRepository  string
	EdgeVersion      string
	// Tunnel deploys the cloud-edge tunnel (docs/tunnel.md).
	Tunnel bool
	// KonnectivityImageRepository holds proxy-server and proxy-agent;
	// empty: upstream's (manifests.DefaultKonnectivityImageRepository).
	KonnectivityImageRepository string
}

// Steps, in order.
const (
	StepJoinPrep = "join prerequisites"
	StepEdge     = "edge components"
	StepTunnel   = "tunnel"
)

// MakePlan renders every object for facts f and settings s. It is a pure
// function: the same inputs give the same plan.
func MakePlan(f *clusterfacts.Facts, s Settings) (*Plan, error) {
	addr, err := NormalizeAddr(s.MasterPublicAddr, f.SecurePort)
	if err != nil {
		return nil, err
	}
	host, _, _ := net.SplitHostPort(addr)
	values := manifests.Values{
		ImageRepository:   s.ImageRepository,
		EdgeVersion:       s.EdgeVersion,
		MasterPublicAddr:  addr,
		APIServerPort:     f.SecurePort,
		ServiceCIDR:       f.ServiceCIDR,
		ClusterDNS:        f.ClusterDNS,
		DNSDomain:         f.DNSDomain,
		KubernetesVersion: f.ServerVersion,
	}.WithDefaults()
	p := &Plan{Config: state.Config{
		MasterPublicAddr:  addr,
		ImageRepository:   values.ImageRepository,
		EdgeVersion:       values.EdgeVersion,
		KubernetesVersion: f.ServerVersion,
		ServiceCIDR:       f.ServiceCIDR,
		DNSDomain:         f.DNSDomain,
		ClusterDNS:        f.ClusterDNS,
		APIServerPort:     f.SecurePort,
	}}
	jp, err := joinprep.Objects(f, host)
	if err != nil {
		return nil, err
	}
	p.Notes = append(p.Notes, jp.Notes...)
	for _, o := range jp.Objects {
		p.Items = append(p.Items, Item{Object: o, Mode: CreateIfMissing, Step: StepJoinPrep})
	}
	edge, err := manifests.Render(values)
	if err != nil {
		return nil, err
	}
	for _, o := range edge {
		p.Items = append(p.Items, Item{Object: o, Mode: Apply, Step: StepEdge})
	}
	if s.Tunnel {
		objs, err := manifests.RenderTunnel(tunnelValues(p, s))
		if err != nil {
			return nil, err
		}
		for _, o := range objs {
			p.Items = append(p.Items, Item{Object: o, Mode: Apply, Step: StepTunnel})
		}
	}
	return p, nil
}

// NormalizeAddr turns host[:port] into host:port, the port defaulting to the
// apiserver's secure port.
func NormalizeAddr(addr string, securePort int) (string, error) {
	if addr == "" {
		return "", fmt.Errorf("no public address for edge nodes: pass --master-public-addr host[:port]")
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		// No port (or an IPv6 literal without brackets).
		host, port = addr, strconv.Itoa(securePort)
		if ip := net.ParseIP(addr); ip == nil && !validHost(addr) {
			return "", fmt.Errorf("--master-public-addr %q is not host[:port]", addr)
		}
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return "", fmt.Errorf("--master-public-addr %q has a bad port", addr)
	}
	if host == "" {
		return "", fmt.Errorf("--master-public-addr %q has no host", addr)
	}
	return net.JoinHostPort(host, port), nil
}

func validHost(h string) bool {
	for _, r := range h {
		if !(r == '-' || r == '.' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
			return false
		}
	}
	return h != ""
}

var crdGK = schema.GroupKind{Group: apiextensionsv1.GroupName, Kind: "CustomResourceDefinition"}

// wave is the item's position in the dependency order; items of one wave
// are written concurrently. Namespaces and CRDs first; then what nothing
// else refers to by existence; then bindings and workloads; custom
// resources of planned CRDs last, after their CRD is Established.
func wave(it Item, plannedGroups map[string]bool) int {
	gk := it.Object.GroupVersionKind().GroupKind()
	switch {
	case gk.Kind == "Namespace" && gk.Group == "", gk == crdGK:
		return 0
	case plannedGroups[gk.Group]:
		return 3
	case gk.Group == "rbac.authorization.k8s.io" && (gk.Kind == "RoleBinding" || gk.Kind == "ClusterRoleBinding"),
		gk.Group == "apps":
		return 2
	}
	return 1
}

// crdGroups are the API groups the plan's CRDs serve.
func crdGroups(items []Item) map[string]bool {
	out := map[string]bool{}
	for _, it := range items {
		if it.Object.GroupVersionKind().GroupKind() == crdGK {
			if g, ok, _ := unstructured.NestedString(it.Object.Object, "spec", "group"); ok {
				out[g] = true
			}
		}
	}
	return out
}

func unstructuredString(o map[string]any, path ...string) (string, bool, error) {
	return unstructured.NestedString(o, path...)
}
