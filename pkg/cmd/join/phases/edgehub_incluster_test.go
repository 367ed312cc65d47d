package phases

import (
	"testing"

	"github.com/edgeadm/edgeadm/pkg/edgehub"
	"github.com/edgeadm/edgeadm/pkg/host"
)

// With the node's IP, join's edgehub configuration turns on the in-cluster
// face on <node IP>:10270 for the cluster's DNS domain, and edgehub accepts it.
func TestEdgeHubConfigServesInClusterPods(t *testing.T) {
	tg := Target{Endpoint: "10.0.0.1:6443", Host: "10.0.0.1", Port: "6443", IsIP: true}
	domain := ClusterDomainOf([]byte("apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\nclusterDomain: edge.example.\n"))
	if domain != "edge.example" {
		t.Fatalf("clusterDomain read as %q", domain)
	}
	if d := ClusterDomainOf([]byte("kind: KubeletConfiguration\n")); d != "" {
		t.Errorf("no clusterDomain read as %q", d)
	}
	data, err := EdgeHubConfigForNode("edge-1", "192.0.2.7", domain, tg, host.DefaultPaths("/"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := edgehub.ParseConfig(data, "join's config.yaml")
	if err != nil {
		t.Fatalf("edgehub refuses join's configuration: %v\n%s", err, data)
	}
	if got.InClusterAddress != "192.0.2.7:10270" || got.ClusterDomain != "edge.example" {
		t.Errorf("inClusterAddress %q, clusterDomain %q", got.InClusterAddress, got.ClusterDomain)
	}
	v6, err := EdgeHubConfigForNode("edge-1", "2001:db8::7", "", tg, host.DefaultPaths("/"))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := edgehub.ParseConfig(v6, "join's config.yaml"); err != nil || got.InClusterAddress != "[2001:db8::7]:10270" || got.ClusterDomain != "" {
		t.Errorf("IPv6 node: %+v, %v", got, err)
	}
}
