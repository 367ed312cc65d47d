package phases

import (
	"reflect"
	"strconv"
	"testing"

	"github.com/edgeadm/edgeadm/pkg/edgehub"
	"github.com/edgeadm/edgeadm/pkg/host"
)

// The file join writes is one edgehub itself accepts, with the values the
// contract names: a drift between the two is caught here, not on a node.
func TestEdgeHubConfigIsWhatEdgeHubLoads(t *testing.T) {
	for _, tg := range []Target{
		{Endpoint: "10.0.0.1:6443", Host: "10.0.0.1", Port: "6443", IsIP: true},
		{Endpoint: "api.example.com:7443", Host: "api.example.com", Port: "7443"},
	} {
		data, err := EdgeHubConfigFor("edge-1", tg, host.DefaultPaths("/"))
		if err != nil {
			t.Fatal(err)
		}
		got, err := edgehub.ParseConfig(data, "join's config.yaml")
		if err != nil {
			t.Fatalf("edgehub refuses join's configuration: %v\n%s", err, data)
		}
		want := &edgehub.Config{
			APIVersion: edgehub.APIVersion, Kind: edgehub.Kind, NodeName: "edge-1",
			ListenAddress: edgehub.DefaultListenAddress, HealthAddress: edgehub.DefaultHealthAddress,
			Upstreams:     []string{tg.Server()},
			ClusterCAFile: edgehub.DefaultClusterCAFile, NodeCertificateFile: edgehub.DefaultNodeCertificateFile,
			DataDir: edgehub.DefaultDataDir,
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("edgehub reads\n%+v\nwant\n%+v", got, want)
		}
		if EdgeHubListen != "127.0.0.1:"+strconv.Itoa(EdgeHubPort) || EdgeHubHealth != "127.0.0.1:"+strconv.Itoa(EdgeHubHealthPort) {
			t.Errorf("preflight checks ports %d and %d, edgehub listens on %s and %s", EdgeHubPort, EdgeHubHealthPort, EdgeHubListen, EdgeHubHealth)
		}
		if EdgeHubCA() != (&edgehub.Config{DataDir: EdgeHubDataDir}).PKIDir()+"/ca.crt" {
			t.Errorf("edgehub's CA is not at %s", EdgeHubCA())
		}
	}
}
