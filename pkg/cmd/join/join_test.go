package join

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	kubeadmapi "k8s.io/kubernetes/cmd/kubeadm/app/apis/kubeadm"

	"github.com/edgeadm/edgeadm/pkg/cmd"
	"github.com/edgeadm/edgeadm/pkg/cmd/exitcode"
	"github.com/edgeadm/edgeadm/pkg/cmd/join/phases"
	"github.com/edgeadm/edgeadm/pkg/cmd/reset"
	"github.com/edgeadm/edgeadm/pkg/host"
	"github.com/edgeadm/edgeadm/pkg/journal"
)

// reset runs "edgeadm reset -f" on the world's host.
func (w *world) reset(extra ...string) (stdout, stderr string, code int) {
	w.t.Helper()
	var out, errOut bytes.Buffer
	streams := cmd.IOStreams{In: strings.NewReader(""), Out: &out, ErrOut: &errOut}
	c := reset.NewCommandWith(streams, reset.Deps{Host: w.fake, Euid: func() int { return 0 }, IsTerminal: func(io.Reader) bool { return false }})
	c.SetArgs(append([]string{"-f"}, extra...))
	c.SilenceErrors, c.SilenceUsage = true, true
	err := c.ExecuteContext(context.Background())
	if err != nil {
		errOut.WriteString("error: " + err.Error() + "\n")
	}
	return out.String(), errOut.String(), exitcode.Code(err)
}

func noDiff(t *testing.T, what string, got, want host.FakeState) {
	t.Helper()
	if d := got.Diff(want); len(d) > 0 {
		t.Fatalf("%s: the host differs from before the join:\n%s", what, strings.Join(d, "\n"))
	}
}

func TestJoinThenJoinAgainThenReset(t *testing.T) {
	w := newWorld(t)
	// Like a systemd-nspawn machine: no CAP_SYS_RESOURCE for services.
	w.fake.PutFile("/proc/1/status", []byte(fmt.Sprintf("Name:\tsystemd\nCapBnd:\t%016x\n", uint64(0x1ffffffffff)&^(1<<24))), 0o444)
	before := w.fake.State()

	stdout, stderr, code := w.run(w.args()...)
	if code != 0 {
		t.Fatalf("join: exit %d\n%s", code, stderr)
	}
	if !strings.Contains(stdout, `This host joined the cluster at https://kubernetes.default:`+w.port()+` as node "edge-1"`) {
		t.Errorf("stdout: %q", stdout)
	}
	for _, want := range []string{"[1/15] preflight:", "[15/15] label done in", "[rollback]"} {
		if strings.Contains(stderr, want) != (want != "[rollback]") {
			t.Errorf("stderr has %q = %v, want %v:\n%s", want, !strings.Contains(stderr, want), want != "[rollback]", stderr)
		}
	}
	if strings.Contains(stdout+stderr, "0123456789abcdef") {
		t.Error("the token's secret was printed")
	}

	// What the host got.
	hosts, _ := w.fake.File("/etc/hosts")
	if want := "127.0.0.1 localhost\n10.1.2.3 db # no newline at the end\n# BEGIN edgeadm\n127.0.0.1 kubernetes.default\n# END edgeadm\n"; string(hosts) != want {
		t.Errorf("/etc/hosts = %q, want %q", hosts, want)
	}
	st := w.fake.State()
	boot := st.Files["/etc/kubernetes/bootstrap-kubelet.conf"]
	if boot.Mode != 0o600 || !bytes.Contains(boot.Data, []byte("server: https://kubernetes.default:"+w.port())) {
		t.Errorf("bootstrap-kubelet.conf: mode %04o\n%s", boot.Mode, boot.Data)
	}
	if ca := st.Files["/etc/kubernetes/pki/ca.crt"]; !bytes.Equal(ca.Data, w.caPEM) {
		t.Error("ca.crt is not the cluster CA")
	}
	flags, _ := w.fake.File("/var/lib/kubelet/kubeadm-flags.env")
	if want := `KUBELET_KUBEADM_ARGS="--hostname-override=edge-1 --node-ip=198.18.0.10 --node-labels=site=berlin,superedge.io/edge-node=enable"`; !strings.Contains(string(flags), want) {
		t.Errorf("kubeadm-flags.env = %q", flags)
	}
	cfg, _ := w.fake.File("/var/lib/kubelet/config.yaml")
	if !strings.Contains(string(cfg), "containerRuntimeEndpoint: unix:///run/containerd/containerd.sock") || !strings.Contains(string(cfg), "failCgroupV1: false") {
		t.Errorf("config.yaml = %s", cfg)
	}
	if _, ok := st.Files["/etc/kubernetes/manifests"]; !ok {
		t.Error("the static pod directory was not made")
	}
	cni, _ := w.fake.File("/etc/cni/net.d/10-edgeadm.conflist")
	if !strings.Contains(string(cni), `"subnet": "10.244.3.0/24"`) {
		t.Errorf("CNI config = %s", cni)
	}
	for _, f := range []string{"/usr/local/bin/kubelet", "/usr/local/bin/containerd", "/opt/cni/bin/bridge", "/etc/containerd/conf.d/10-edgeadm-host.toml",
		"/etc/systemd/system/kubelet.service.d/10-edgeadm.conf", "/etc/containerd/config.toml", "/etc/sysctl.d/90-edgeadm.conf", "/etc/modules-load.d/edgeadm.conf"} {
		if _, ok := st.Files[f]; !ok {
			t.Errorf("%s was not installed", f)
		}
	}
	if st.Files["/usr/local/bin/kubelet"].Mode != 0o755 {
		t.Error("kubelet is not executable")
	}
	for _, u := range []string{"containerd.service", "kubelet.service"} {
		if s := st.Units[u]; !s.IsActive() || !s.IsEnabled() {
			t.Errorf("%s: %+v", u, s)
		}
	}
	if st.Sysctls["net.ipv4.ip_forward"] != "1" || !st.Modules["br_netfilter"] {
		t.Error("kernel not set up")
	}
	node, err := w.clients.CoreV1().Nodes().Get(context.Background(), testNode, metav1.GetOptions{})
	if err != nil || node.Labels[phases.EdgeNodeLabel] != "enable" || node.Labels["site"] != "berlin" {
		t.Errorf("node labels: %v, %v", node.Labels, err)
	}
	for p, f := range st.Files {
		if host.Within(p, "/var/lib/edgeadm") && f.Mode&0o077 != 0 {
			t.Errorf("%s is readable by others: %04o", p, f.Mode)
		}
	}

	// The same join again: nothing to do, nothing changed, exit 0.
	n := w.fake.Mutations()
	stdout, stderr, code = w.run(w.args("-o", "json")...)
	if code != 0 {
		t.Fatalf("second join: exit %d\n%s", code, stderr)
	}
	if w.fake.Mutations() != n {
		t.Errorf("the second join changed the host: %v", w.fake.Log()[n:])
	}
	var r Report
	if err := json.Unmarshal([]byte(stdout), &r); err != nil || !r.AlreadyJoined || !r.Succeeded || r.NodeName != testNode {
		t.Errorf("report %+v, %v\n%s", r, err, stdout)
	}

	// Another join with other parameters is refused.
	_, stderr, code = w.run(append(w.args(), "--node-name", "other")...)
	if code != exitcode.PreflightFailed || !strings.Contains(stderr, `run "edgeadm reset" first`) {
		t.Errorf("a different join: exit %d\n%s", code, stderr)
	}

	// Reset: everything as it was, /etc/hosts byte for byte.
	stdout, stderr, code = w.reset()
	if code != 0 {
		t.Fatalf("reset: exit %d\n%s", code, stderr)
	}
	if !strings.Contains(stdout, `kubectl delete node edge-1`) {
		t.Errorf("reset does not say how to remove the Node: %q", stdout)
	}
	// The kubelet's files go before join's own, so no directory of join's is
	// found holding someone else's files; the pods go while the kubelet is
	// stopped and the pod network's configuration is still there.
	if strings.Contains(stderr, "kept") {
		t.Errorf("reset kept something:\n%s", stderr)
	}
	stop := strings.Index(stderr, "systemctl stop kubelet.service")
	pods := strings.Index(stderr, "remove pods and containers")
	cniAt := strings.Index(stderr, "remove /etc/cni/net.d/10-edgeadm.conflist")
	if !(pods >= 0 && pods < cniAt) || stop >= 0 && stop < pods {
		t.Errorf("reset order: pods at %d, CNI config at %d, kubelet stop at %d:\n%s", pods, cniAt, stop, stderr)
	}
	noDiff(t, "after reset", w.fake.State(), before)

	// Reset again: nothing to do.
	stdout, _, code = w.reset()
	if code != 0 || !strings.Contains(stdout, "Nothing to reset") {
		t.Errorf("second reset: %d %q", code, stdout)
	}
}

func TestJoinJSONReport(t *testing.T) {
	w := newWorld(t)
	stdout, stderr, code := w.run(w.args("-o", "json")...)
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	var r Report
	if err := json.Unmarshal([]byte(stdout), &r); err != nil {
		t.Fatalf("%v\n%s", err, stdout)
	}
	var names []string
	for _, p := range r.Phases {
		names = append(names, p.Name+":"+p.Status)
	}
	want := "preflight:done fetch-package:done install:done kernel:done containerd:done images:done hosts:done discovery:done " +
		"kubelet-config:done edgehub:done kubelet-start:done tls-bootstrap:done cni:done wait-ready:done label:done complete:done"
	if strings.Join(names, " ") != want {
		t.Errorf("phases %s\nwant   %s", strings.Join(names, " "), want)
	}
	if r.NodeName != testNode || r.Server != "https://kubernetes.default:"+w.port() || !r.Succeeded || r.DurationSeconds <= 0 {
		t.Errorf("report %+v", r)
	}
}

func TestFailedJoinRollsBackAndSaysWhy(t *testing.T) {
	w := newWorld(t)
	before := w.fake.State()
	w.discover = func(*kubeadmapi.Discovery, time.Duration) (*clientcmdapi.Config, error) {
		return nil, errors.New("could not find a JWS signature for token abcdef.0123456789abcdef")
	}
	stdout, stderr, code := w.run(w.args()...)
	if code != exitcode.Failure {
		t.Fatalf("exit %d, want 1\n%s", code, stderr)
	}
	if !strings.Contains(stderr, "token discovery at kubernetes.default:") || !strings.Contains(stderr, "[rollback]") {
		t.Errorf("stderr:\n%s", stderr)
	}
	if strings.Contains(stdout+stderr, "0123456789abcdef") {
		t.Errorf("the token leaked into the output:\n%s", stderr)
	}
	noDiff(t, "after a failed join", w.fake.State(), before)
}

func TestKubeletThatNeverBootstrapsTimesOutAndRollsBack(t *testing.T) {
	w := newWorld(t)
	before := w.fake.State()
	w.kubeletRuns = false
	_, stderr, code := w.run(w.args("--timeout", "50ms")...)
	if code != exitcode.Failure || !strings.Contains(stderr, "did not finish its TLS bootstrap") {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	noDiff(t, "after a timed-out join", w.fake.State(), before)
}

// Bad inputs are refused before edgeadm changes anything on the host.
func TestBadInputsChangeNothing(t *testing.T) {
	w := newWorld(t)
	valid := func(replace map[string]string, drop ...string) []string {
		args := []string{"join", w.endpoint}
		flags := map[string]string{"--token": testToken, "--discovery-token-ca-cert-hash": w.caHash, "--install-pkg-path": w.pkgPath}
		for k, v := range replace {
			flags[k] = v
		}
		for _, k := range []string{"--token", "--discovery-token-ca-cert-hash", "--install-pkg-path", "--node-labels", "--node-ip", "--install-pkg-sha256", "--node-name", "-o"} {
			if v, ok := flags[k]; ok && !contains(drop, k) {
				args = append(args, k, v)
			}
		}
		return args
	}
	tests := []struct {
		name string
		args []string
		code int
		has  string
	}{
		{"no address", []string{"join", "--token", testToken}, exitcode.Usage, "expected one argument"},
		{"address without port", append([]string{"join", "198.18.0.1"}, valid(nil)[2:]...), exitcode.Usage, "is not <host>:<port>"},
		{"bad port", append([]string{"join", "198.18.0.1:99999"}, valid(nil)[2:]...), exitcode.Usage, "no valid port"},
		{"bad host", append([]string{"join", "not a host:6443"}, valid(nil)[2:]...), exitcode.Usage, "neither an IP address nor a DNS name"},
		{"missing token", valid(nil, "--token"), exitcode.Usage, "--token is required"},
		{"malformed token", valid(map[string]string{"--token": "ABCDEF.secretsecretsecret"}), exitcode.Usage, "is not a bootstrap token"},
		{"missing hash", valid(nil, "--discovery-token-ca-cert-hash"), exitcode.Usage, "--discovery-token-ca-cert-hash is required"},
		{"malformed hash", valid(map[string]string{"--discovery-token-ca-cert-hash": "md5:1234"}), exitcode.Usage, "md5:1234"},
		{"short hash", valid(map[string]string{"--discovery-token-ca-cert-hash": "sha256:1234"}), exitcode.Usage, "sha256:1234"},
		{"missing package", valid(nil, "--install-pkg-path"), exitcode.Usage, "--install-pkg-path is required"},
		{"http package", valid(map[string]string{"--install-pkg-path": "http://198.18.0.1/p.tar.gz"}), exitcode.Usage, "plain http:// is refused"},
		{"bad package sum", valid(map[string]string{"--install-pkg-sha256": "xyz"}), exitcode.Usage, "not a sha256 sum"},
		{"reserved label", valid(map[string]string{"--node-labels": "node-role.kubernetes.io/edge="}), exitcode.Usage, "reserved"},
		{"bad label", valid(map[string]string{"--node-labels": "a b=c"}), exitcode.Usage, "not a label key"},
		{"edge label changed", valid(map[string]string{"--node-labels": "superedge.io/edge-node=disable"}), exitcode.Usage, "must be"},
		{"loopback node IP", valid(map[string]string{"--node-ip": "127.0.0.1"}), exitcode.Usage, "--node-ip"},
		{"bad node name", valid(map[string]string{"--node-name": "Not_Valid"}), exitcode.Usage, "node name"},
		{"bad output", valid(map[string]string{"-o": "xml"}), exitcode.Usage, "invalid output format"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := host.NewFake()
			f.Fail = func(op, arg string) error { return fmt.Errorf("changed the host: %s %s", op, arg) }
			w.fake = f
			_, stderr, code := w.run(tt.args...)
			if code != tt.code || !strings.Contains(stderr, tt.has) {
				t.Fatalf("exit %d (want %d), stderr lacks %q:\n%s", code, tt.code, tt.has, stderr)
			}
			if strings.Contains(stderr, "secretsecret") {
				t.Error("the token was echoed")
			}
			if f.Mutations() != 0 {
				t.Errorf("host touched: %v", f.Log())
			}
		})
	}
}

func TestNotRootChangesNothing(t *testing.T) {
	w := newWorld(t)
	w.env.Euid = func() int { return 1000 }
	before := w.fake.State()
	_, stderr, code := w.run(w.args()...)
	if code != exitcode.PreflightFailed || !strings.Contains(stderr, "IsPrivilegedUser") || !strings.Contains(stderr, "run it as root") {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	noDiff(t, "not root", w.fake.State(), before)
}

func TestPreflightFindsEverythingAtOnceAndChangesNothing(t *testing.T) {
	w := newWorld(t)
	w.fake.PutFile("/etc/kubernetes/kubelet.conf", []byte("old"), 0o600)
	w.fake.PutFile("/proc/swaps", []byte("Filename Type Size Used Priority\n/swap file 1024 0 -2\n"), 0o444)
	w.fake.PutFile("/etc/hosts", []byte("10.9.9.9 kubernetes.default\n"), 0o644)
	w.env.Listen = func(string, string) (net.Listener, error) { return nil, errors.New("address in use") }
	before := w.fake.State()
	_, stderr, code := w.run(w.args()...)
	if code != exitcode.PreflightFailed {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	for _, want := range []string{
		"[ERROR FileAvailable--etc-kubernetes-kubelet.conf]", `run "edgeadm reset"`,
		"[ERROR Port-10250]", "[ERROR Port-10248]", "[ERROR Port-10261]", "[ERROR Port-10270]",
		"[WARNING Swap]", "[ERROR KubeletConfig]: swap is on",
		"[ERROR HostsFile]: /etc/hosts already maps kubernetes.default to 10.9.9.9",
		"--ignore-preflight-errors",
	} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
	noDiff(t, "after preflight", w.fake.State(), before)
}

func TestPreflightClusterChecks(t *testing.T) {
	tests := []struct {
		name  string
		tweak func(w *world) []string
		has   string
	}{
		{"wrong CA hash", func(w *world) []string {
			a := w.args()
			a[5] = "sha256:" + strings.Repeat("ab", 32)
			return a
		}, "[ERROR Discovery]: the cluster's CA does not match --discovery-token-ca-cert-hash"},
		{"unknown token", func(w *world) []string {
			a := w.args()
			a[3] = "zzzzzz.0123456789abcdef"
			return a
		}, `[ERROR Discovery]: the cluster does not know token "zzzzzz", or it has expired`},
		{"wrong secret", func(w *world) []string {
			a := w.args()
			a[3] = "abcdef.zzzzzzzzzzzzzzzz"
			return a
		}, `[ERROR Discovery]: the secret part of token "abcdef" is wrong`},
		{"unreachable", func(w *world) []string {
			a := w.args()
			a[1] = "127.0.0.1:1"
			return a
		}, "[ERROR APIServerReachable]: cannot reach the API server at 127.0.0.1:1"},
		{"domain not in certificate", func(w *world) []string {
			a := w.args()
			a[1] = "api.example.test:" + w.port()
			w.env.DialTLS = func(ctx context.Context, _ string, cfg *tls.Config) (*tls.Conn, error) {
				return phases.DefaultEnv().DialTLS(ctx, w.endpoint, cfg)
			}
			return a
		}, "[ERROR APIServerCertificate]: the API server's certificate does not carry api.example.test (it has: kubernetes, kubernetes.default, kubernetes.default.svc, 10.96.0.1)"},
		{"no kubelet-config", func(w *world) []string {
			_ = w.clients.CoreV1().ConfigMaps("kube-system").Delete(context.Background(), "kubelet-config", metav1.DeleteOptions{})
			return w.args()
		}, "[ERROR KubeletConfig]: the bootstrap token cannot read kube-system/kubelet-config"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld(t)
			before := w.fake.State()
			args := tt.tweak(w)
			_, stderr, code := w.run(args...)
			if code != exitcode.PreflightFailed || !strings.Contains(stderr, tt.has) {
				t.Fatalf("exit %d, want %d; stderr lacks %q:\n%s", code, exitcode.PreflightFailed, tt.has, stderr)
			}
			noDiff(t, tt.name, w.fake.State(), before)
		})
	}
}

func TestBadPackageChangesNothing(t *testing.T) {
	w := newWorld(t)
	before := w.fake.State()
	_, stderr, code := w.run(w.args("--install-pkg-sha256", strings.Repeat("0", 64))...)
	if code != exitcode.Failure || !strings.Contains(stderr, "checksum mismatch") {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	noDiff(t, "sha mismatch", w.fake.State(), before)
}

func TestDryRunChangesNothing(t *testing.T) {
	w := newWorld(t)
	before := w.fake.State()
	stdout, stderr, code := w.run(w.args("--dry-run")...)
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	if w.fake.Mutations() != 0 {
		t.Fatalf("dry run changed the host: %v", w.fake.Log())
	}
	noDiff(t, "dry run", w.fake.State(), before)
	for _, want := range []string{
		"[dry-run] would install /usr/local/bin/kubelet",
		"[dry-run] would set the \"# BEGIN edgeadm\" block in /etc/hosts to:\n127.0.0.1 kubernetes.default",
		"[dry-run] would write /etc/kubernetes/bootstrap-kubelet.conf",
		"[dry-run] would write /var/lib/kubelet/config.yaml",
		"[dry-run] would run systemctl start kubelet.service",
	} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q", want)
		}
	}
	if !strings.Contains(stdout, "Dry run: nothing was changed") {
		t.Errorf("stdout %q", stdout)
	}
}

// A join killed after any single change, then either run again (it
// completes) or reset (the host is as before).
func TestKillAtEveryChangeThenRerunOrReset(t *testing.T) {
	w := newWorld(t)
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
				w := newWorld(t)
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
				}
				if _, stderr, code := w.reset(); code != 0 {
					t.Fatalf("%s, reset after a kill at %d: exit %d\n%s", then, n, code, stderr)
				}
				noDiff(t, fmt.Sprintf("kill at %d, %s, reset", n, then), w.fake.State(), before)
			}
		})
	}
}

// The test-only hook kills the process at a phase boundary.
func TestKillHookAtEachPhaseBoundary(t *testing.T) {
	for _, p := range phases.All() {
		if p.Hidden {
			continue
		}
		t.Run(p.Name, func(t *testing.T) {
			w := newWorld(t)
			before := w.fake.State()
			w.env.Getenv = func(k string) string {
				if k == KillAtEnv {
					return p.Name
				}
				return ""
			}
			_, _, _ = w.run(w.args()...)
			if !w.killed {
				t.Fatalf("the hook did not fire after %s", p.Name)
			}
			w.fake.KillAfter(-1)
			w.env.Getenv = func(string) string { return "" }
			if _, stderr, code := w.run(w.args()...); code != 0 {
				t.Fatalf("rerun after a kill after %s: exit %d\n%s", p.Name, code, stderr)
			}
			if _, stderr, code := w.reset(); code != 0 {
				t.Fatalf("reset: exit %d\n%s", code, stderr)
			}
			noDiff(t, "kill hook, rerun, reset", w.fake.State(), before)
		})
	}
}

func TestJoinPhaseSubcommand(t *testing.T) {
	w := newWorld(t)
	args := append([]string{"join", "phase", "hosts"}, w.args()[1:]...)
	_, stderr, code := w.run(args...)
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	hosts, _ := w.fake.File("/etc/hosts")
	if !strings.Contains(string(hosts), "127.0.0.1 kubernetes.default") {
		t.Fatalf("hosts %q", hosts)
	}
	j, err := journal.Open(w.fake)
	if err != nil || len(j.Entries()) == 0 || j.Completion() != nil {
		t.Fatalf("journal after one phase: %v entries, completion %v, %v", len(j.Entries()), j.Completion(), err)
	}
}

func TestSkipPhases(t *testing.T) {
	w := newWorld(t)
	stdout, stderr, code := w.run(w.args("--skip-phases", "cni,label", "-o", "json")...)
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	if strings.Contains(stdout, `"name": "cni"`) || strings.Contains(stdout, `"name": "label"`) {
		t.Errorf("skipped phases ran:\n%s", stdout)
	}
	if _, ok := w.fake.File("/etc/cni/net.d/10-edgeadm.conflist"); ok {
		t.Error("cni ran although skipped")
	}
}

// A domain the certificate carries: no /etc/hosts line, the domain in the
// kubeconfig.
func TestDomainJoin(t *testing.T) {
	w := newWorld(t)
	hostsBefore, _ := w.fake.File("/etc/hosts")
	w.discoverAt = "kubernetes.default.svc"
	w.env.DialTLS = func(ctx context.Context, _ string, cfg *tls.Config) (*tls.Conn, error) {
		return phases.DefaultEnv().DialTLS(ctx, w.endpoint, cfg) // the name resolves to the listener
	}
	a := w.args()
	a[1] = "kubernetes.default.svc:" + w.port()
	if _, stderr, code := w.run(a...); code != 0 {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	if hosts, _ := w.fake.File("/etc/hosts"); !bytes.Equal(hosts, hostsBefore) {
		t.Errorf("a domain join changed /etc/hosts: %q", hosts)
	}
	boot, _ := w.fake.File("/etc/kubernetes/bootstrap-kubelet.conf")
	if !bytes.Contains(boot, []byte("server: https://kubernetes.default.svc:"+w.port())) {
		t.Errorf("bootstrap kubeconfig:\n%s", boot)
	}
}

// Without a CA pin, only when asked for by name.
func TestUnsafeSkipCAVerification(t *testing.T) {
	w := newWorld(t)
	a := w.args()
	a = append(a[:4], a[6:]...) // drop --discovery-token-ca-cert-hash
	if a[4] != "--install-pkg-path" {
		t.Fatalf("args %v", a)
	}
	if _, stderr, code := w.run(a...); code != exitcode.Usage || !strings.Contains(stderr, "--discovery-token-ca-cert-hash is required") {
		t.Fatalf("without a hash: exit %d\n%s", code, stderr)
	}
	if _, stderr, code := w.run(append(a, "--discovery-token-unsafe-skip-ca-verification")...); code != 0 {
		t.Fatalf("with --discovery-token-unsafe-skip-ca-verification: exit %d\n%s", code, stderr)
	}
}

func TestParseEndpoint(t *testing.T) {
	for in, want := range map[string]phases.Target{
		"198.18.0.1:6443":      {Endpoint: "198.18.0.1:6443", Host: "198.18.0.1", Port: "6443", IsIP: true},
		"[2001:db8::1]:443":    {Endpoint: "[2001:db8::1]:443", Host: "2001:db8::1", Port: "443", IsIP: true},
		"API.Example.com:6443": {Endpoint: "API.Example.com:6443", Host: "api.example.com", Port: "6443"},
	} {
		got, err := ParseEndpoint(in)
		if err != nil || got != want {
			t.Errorf("ParseEndpoint(%q) = %+v, %v", in, got, err)
		}
	}
	for _, bad := range []string{"", "6443", "host:", ":6443", "198.18.0.1:0", "0.0.0.0:6443", "a_b.example:6443", "fe80::1%eth0:6443", "[fe80::1%eth0]:6443", "single:6443"} {
		if _, err := ParseEndpoint(bad); err == nil {
			t.Errorf("ParseEndpoint(%q) accepted", bad)
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func TestJoinWhileAnotherRunsIsRefused(t *testing.T) {
	w := newWorld(t)
	var out, errOut bytes.Buffer
	deps := w.deps()
	deps.Lock = func() (func(), error) { return nil, host.ErrLocked }
	c := NewCommandWith(cmd.IOStreams{In: strings.NewReader(""), Out: &out, ErrOut: &errOut}, deps)
	c.SetArgs(w.args()[1:])
	c.SilenceErrors, c.SilenceUsage = true, true
	err := c.ExecuteContext(context.Background())
	if !errors.Is(err, host.ErrLocked) || w.fake.Mutations() != 0 {
		t.Fatalf("err = %v, %d changes", err, w.fake.Mutations())
	}
}
