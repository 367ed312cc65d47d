package join

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/yaml"

	"github.com/edgeadm/edgeadm/pkg/cmd/join/phases"
	"github.com/edgeadm/edgeadm/pkg/host"
)

const edgeHubUnitFile = "[Unit]\nBefore=kubelet.service\n[Service]\nExecStart=/usr/local/bin/edgehub --config /etc/edgehub/config.yaml\n"

// edgeHubCAPEM stands for the CA "edgehub init" makes.
var edgeHubCAPEM = []byte("-----BEGIN CERTIFICATE-----\nZWRnZWh1Yg==\n-----END CERTIFICATE-----\n")

// newEdgeHubWorld is a world whose package carries edgehub, and whose host
// plays edgehub: "edgehub init" makes its PKI, starting it fills its cache.
func newEdgeHubWorld(t *testing.T) *world {
	t.Helper()
	w := newWorld(t)
	w.pkgPath = writePackage(t, map[string]string{"bin/edgehub": "#!/bin/sh\n# edgehub\n", "systemd/edgehub.service": edgeHubUnitFile})
	kubelet := w.daemons
	w.fake.After = func(op, arg string) {
		kubelet(op, arg)
		switch {
		case op == "Run" && arg == "/usr/local/bin/edgehub init --config /etc/edgehub/config.yaml":
			w.fake.PutFile("/var/lib/edgehub/pki/ca.crt", edgeHubCAPEM, 0o644)
			w.fake.PutFile("/var/lib/edgehub/pki/ca.key", []byte("key"), 0o600)
		case op == "Systemctl" && arg == "start edgehub.service":
			w.fake.PutFile("/var/lib/edgehub/cache/v1/pods/x", []byte("cached"), 0o600)
		}
	}
	w.env.EdgeHubReady = func(context.Context) error {
		if s, _ := w.fake.UnitState(context.Background(), "edgehub.service"); !s.IsActive() {
			return errors.New("connection refused")
		}
		return nil
	}
	return w
}

func TestJoinStartsEdgeHubAndPointsTheKubeletAtIt(t *testing.T) {
	w := newEdgeHubWorld(t)
	before := w.fake.State()
	var order []string
	after := w.fake.After
	w.fake.After = func(op, arg string) {
		if op == "Systemctl" && strings.HasPrefix(arg, "start ") {
			order = append(order, strings.TrimPrefix(arg, "start "))
		}
		after(op, arg)
	}
	_, stderr, code := w.run(w.args()...)
	if code != 0 {
		t.Fatalf("join: exit %d\n%s", code, stderr)
	}
	if strings.Contains(stderr, "WARNING EdgeHub") {
		t.Errorf("a package with edgehub warned:\n%s", stderr)
	}
	if want := []string{"containerd.service", "edgehub.service", "kubelet.service"}; fmt.Sprint(order) != fmt.Sprint(want) {
		t.Errorf("units started in the order %v, want %v", order, want)
	}
	st := w.fake.State()

	// The configuration: the contract's fields, the joined server as upstream, no secret.
	cfg := st.Files["/etc/edgehub/config.yaml"]
	if cfg.Mode != 0o644 {
		t.Errorf("config.yaml mode %04o", cfg.Mode)
	}
	var c phases.EdgeHubConfiguration
	if err := yaml.UnmarshalStrict(cfg.Data, &c); err != nil {
		t.Fatal(err)
	}
	want := phases.EdgeHubConfiguration{
		APIVersion: "edgehub.edgeadm.io/v1alpha1", Kind: "EdgeHubConfiguration", NodeName: testNode,
		ListenAddress: "127.0.0.1:10261", HealthAddress: "127.0.0.1:10262",
		Upstreams:     []string{"https://kubernetes.default:" + w.port()},
		ClusterCAFile: "/etc/kubernetes/pki/ca.crt", NodeCertificateFile: "/var/lib/kubelet/pki/kubelet-client-current.pem",
		DataDir: "/var/lib/edgehub",
		// edgehub serves the node's in-cluster pods on the node's IP.
		InClusterAddress: testNodeIP + ":10270",
	}
	if fmt.Sprintf("%+v", c) != fmt.Sprintf("%+v", want) {
		t.Errorf("config.yaml:\n%+v\nwant\n%+v", c, want)
	}
	if bytes.Contains(cfg.Data, []byte("0123456789abcdef")) {
		t.Error("config.yaml holds the token")
	}
	if d := st.Files["/var/lib/edgehub"]; d.Kind != host.KindDir || d.Mode != 0o700 {
		t.Errorf("/var/lib/edgehub: %+v", d)
	}
	if s := st.Units["edgehub.service"]; !s.IsActive() || !s.IsEnabled() {
		t.Errorf("edgehub.service: %+v", s)
	}

	// The bootstrap kubeconfig names edgehub, with edgehub's CA and the token.
	boot := st.Files["/etc/kubernetes/bootstrap-kubelet.conf"]
	kc, err := clientcmd.Load(boot.Data)
	if err != nil || boot.Mode != 0o600 {
		t.Fatalf("bootstrap-kubelet.conf: mode %04o, %v", boot.Mode, err)
	}
	for _, cl := range kc.Clusters {
		if cl.Server != "https://127.0.0.1:10261" || !bytes.Equal(cl.CertificateAuthorityData, edgeHubCAPEM) {
			t.Errorf("bootstrap cluster: server %s, CA %q", cl.Server, cl.CertificateAuthorityData)
		}
	}
	for _, ai := range kc.AuthInfos {
		if ai.Token != testToken {
			t.Error("the bootstrap kubeconfig lost the token")
		}
	}

	// Reset: edgehub stopped and disabled, its unit, configuration and
	// data directory (its cache may hold secrets) gone.
	_, stderr, code = w.reset()
	if code != 0 {
		t.Fatalf("reset: exit %d\n%s", code, stderr)
	}
	// The kubelet stops first (it would only fail against a stopped
	// edgehub), edgehub next, and only then goes what edgehub made, its
	// data directory and configuration.
	var at []int
	for _, want := range []string{"systemctl stop kubelet.service", "systemctl stop edgehub.service",
		"systemctl disable edgehub.service", "remove new entries in /var/lib/edgehub", "remove /etc/edgehub/config.yaml"} {
		i := strings.Index(stderr, want)
		if i < 0 {
			t.Errorf("reset does not %s:\n%s", want, stderr)
		}
		at = append(at, i)
	}
	if !slices.IsSorted(at) {
		t.Errorf("reset order (kubelet stop, edgehub stop and disable, its data, its config) at %v:\n%s", at, stderr)
	}
	noDiff(t, "join with edgehub, reset", w.fake.State(), before)
}

func TestJoinWithoutEdgeHubWarnsAndGoesDirect(t *testing.T) {
	w := newWorld(t)
	_, stderr, code := w.run(w.args()...)
	if code != 0 {
		t.Fatalf("join: exit %d\n%s", code, stderr)
	}
	if !strings.Contains(stderr, "[WARNING EdgeHub]: the install package has no edgehub") {
		t.Errorf("no warning:\n%s", stderr)
	}
	st := w.fake.State()
	if _, ok := st.Files["/etc/edgehub/config.yaml"]; ok {
		t.Error("edgehub configured without edgehub")
	}
	if boot := st.Files["/etc/kubernetes/bootstrap-kubelet.conf"]; !bytes.Contains(boot.Data, []byte("server: https://kubernetes.default:"+w.port())) {
		t.Errorf("bootstrap-kubelet.conf:\n%s", boot.Data)
	}
}

func TestEdgeHubThatNeverGetsReadyRollsBack(t *testing.T) {
	w := newEdgeHubWorld(t)
	w.env.EdgeHubReady = func(context.Context) error { return errors.New("connection refused") }
	before := w.fake.State()
	_, stderr, code := w.run(w.args("--timeout", "50ms")...)
	if code == 0 || !strings.Contains(stderr, "edgehub did not become ready") || !strings.Contains(stderr, "journalctl -u edgehub") {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	if st := w.fake.State(); st.Units["kubelet.service"].IsActive() {
		t.Error("the kubelet was started although edgehub was not ready")
	}
	noDiff(t, "edgehub never ready, rollback", w.fake.State(), before)
}

func TestEdgeHubDryRunChangesNothing(t *testing.T) {
	w := newEdgeHubWorld(t)
	before := w.fake.State()
	_, stderr, code := w.run(w.args("--dry-run")...)
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	if w.fake.Mutations() != 0 {
		t.Fatalf("dry run changed the host: %v", w.fake.Log())
	}
	noDiff(t, "dry run", w.fake.State(), before)
	for _, want := range []string{
		"[dry-run] would write /etc/edgehub/config.yaml",
		"[dry-run] would run /usr/local/bin/edgehub init --config /etc/edgehub/config.yaml",
		"[dry-run] would run systemctl start edgehub.service",
		"[edgehub] Would wait up to",
		"/etc/kubernetes/bootstrap-kubelet.conf now names https://127.0.0.1:10261",
	} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
}

// A join with edgehub killed after any single change, then rerun or reset.
func TestEdgeHubKillAtEveryChangeThenRerunOrReset(t *testing.T) {
	w := newEdgeHubWorld(t)
	if _, stderr, code := w.run(w.args()...); code != 0 {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	total := w.fake.Mutations()
	step := 1
	if testing.Short() {
		step = 7
	}
	for n := 0; n < total; n += step {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			for _, then := range []string{"rerun", "reset"} {
				w := newEdgeHubWorld(t)
				before := w.fake.State()
				w.fake.KillAfter(n)
				if _, _, code := w.run(w.args()...); code == 0 {
					t.Fatalf("a join killed after %d changes succeeded", n)
				}
				w.fake.KillAfter(-1)
				if then == "rerun" {
					if _, stderr, code := w.run(w.args()...); code != 0 {
						t.Fatalf("rerun after a kill at %d: exit %d\n%s", n, code, stderr)
					}
					boot, _ := w.fake.File("/etc/kubernetes/bootstrap-kubelet.conf")
					if !bytes.Contains(boot, []byte("server: https://127.0.0.1:10261")) {
						t.Fatalf("rerun after a kill at %d: the kubelet is not pointed at edgehub:\n%s", n, boot)
					}
				}
				if _, stderr, code := w.reset(); code != 0 {
					t.Fatalf("%s, reset after a kill at %d: exit %d\n%s", then, n, code, stderr)
				}
				noDiff(t, fmt.Sprintf("kill at %d, %s, reset", n, then), w.fake.State(), before)
			}
		})
	}
}
