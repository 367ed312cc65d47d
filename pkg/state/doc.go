// Package state reads and writes what edgeadm records in the cluster, so that
// later commands can act exactly on what earlier ones did.
//
// Everything lives in one ConfigMap, kube-system/edgeadm (Name, Namespace):
//   - key "config.yaml": the addon's settings (Config): the address edge nodes
//     dial (masterPublicAddr), image repository, edge version, and the facts
//     addon learned. `token create` reads masterPublicAddr from here.
//   - key "ownership.yaml": what addon created and what it adopted
//     (Ownership), so detach deletes exactly what addon made.
//
// kube-system is used rather than edge-system so the record outlives the
// deletion of edge-system during detach and is removed last. Nothing secret
// is ever stored here.
package state

const (
	// Namespace and Name locate the record.
	Namespace = "kube-system"
	Name      = "edgeadm"
	// ConfigKey and OwnershipKey are its data keys.
	ConfigKey    = "config.yaml"
	OwnershipKey = "ownership.yaml"
)

// Config is what addon records about how edge nodes reach and join the cluster.
type Config struct {
	// MasterPublicAddr is host:port, the address edge nodes dial.
	MasterPublicAddr string `json:"masterPublicAddr,omitempty"`
	ImageRepository  string `json:"imageRepository,omitempty"`
	EdgeVersion      string `json:"edgeVersion,omitempty"`
	// KubernetesVersion, ServiceCIDR, DNSDomain, ClusterDNS, APIServerPort are
	// facts learned from the cluster at addon time.
	KubernetesVersion string `json:"kubernetesVersion,omitempty"`
	ServiceCIDR       string `json:"serviceCIDR,omitempty"`
	DNSDomain         string `json:"dnsDomain,omitempty"`
	ClusterDNS        string `json:"clusterDNS,omitempty"`
	APIServerPort     int    `json:"apiServerPort,omitempty"`
}
