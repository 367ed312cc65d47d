package addon

import (
	"reflect"
	"testing"

	"github.com/edgeadm/edgeadm/pkg/clusterfacts"
	"github.com/edgeadm/edgeadm/pkg/state"
)

func testFacts() *clusterfacts.Facts {
	return &clusterfacts.Facts{
		ServerVersion: "v1.37.1", SecurePort: 7443,
		CAPEM:       []byte("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"),
		ServiceCIDR: "10.96.0.0/12", ClusterDNS: "10.96.0.10", DNSDomain: "cluster.local",
		CertDNSNames: []string{"kubernetes.default"},
	}
}

func TestMakePlan(t *testing.T) {
	s := Settings{MasterPublicAddr: "203.0.113.10", EdgeVersion: "v0.1.0"}
	p1, err := MakePlan(testFacts(), s)
	if err != nil {
		t.Fatal(err)
	}
	p2, _ := MakePlan(testFacts(), s)
	if !reflect.DeepEqual(p1, p2) {
		t.Fatal("MakePlan is not deterministic")
	}
	if p1.Config.MasterPublicAddr != "203.0.113.10:7443" || p1.Config.APIServerPort != 7443 {
		t.Errorf("config = %+v", p1.Config)
	}
	seen := map[state.Ref]bool{}
	lastStep := StepJoinPrep
	for _, it := range p1.Items {
		if seen[it.Ref()] {
			t.Errorf("%s planned twice", it.Ref())
		}
		seen[it.Ref()] = true
		if it.Step == StepJoinPrep && it.Mode != CreateIfMissing || it.Step == StepEdge && it.Mode != Apply {
			t.Errorf("%s: step %s mode %s", it.Ref(), it.Step, it.Mode)
		}
		if it.Step == StepJoinPrep && lastStep == StepEdge {
			t.Errorf("join prerequisites after edge components")
		}
		lastStep = it.Step
	}
	// Waves: namespaces and CRDs first, bindings after what they bind.
	groups := crdGroups(p1.Items)
	for _, it := range p1.Items {
		w := wave(it, groups)
		switch it.Object.GetKind() {
		case "Namespace", "CustomResourceDefinition":
			if w != 0 {
				t.Errorf("%s in wave %d", it.Ref(), w)
			}
		case "RoleBinding", "ClusterRoleBinding", "Deployment":
			if w != 2 {
				t.Errorf("%s in wave %d", it.Ref(), w)
			}
		}
	}
}

func TestNormalizeAddr(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"203.0.113.10", "203.0.113.10:6443"},
		{"203.0.113.10:443", "203.0.113.10:443"},
		{"edge.example.com", "edge.example.com:6443"},
		{"[2001:db8::1]:7443", "[2001:db8::1]:7443"},
		{"2001:db8::1", "[2001:db8::1]:6443"},
	} {
		got, err := NormalizeAddr(tc.in, 6443)
		if err != nil || got != tc.want {
			t.Errorf("NormalizeAddr(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{"", "host:0", "host:99999", "bad host", ":6443"} {
		if _, err := NormalizeAddr(bad, 6443); err == nil {
			t.Errorf("NormalizeAddr(%q) accepted", bad)
		}
	}
}

func TestPublicHostFromServer(t *testing.T) {
	for server, want := range map[string]string{
		"https://127.0.0.1:6443": "", "https://localhost:6443": "", "https://[::1]:6443": "",
		"https://198.18.0.2:6443": "198.18.0.2", "https://api.example.com": "api.example.com",
	} {
		got, ok := publicHostFromServer(server)
		if got != want || ok != (want != "") {
			t.Errorf("publicHostFromServer(%s) = %q, %t", server, got, ok)
		}
	}
}
