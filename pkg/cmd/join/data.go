package join

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	bootstraputil "k8s.io/cluster-bootstrap/token/util"
	kubeletapis "k8s.io/kubelet/pkg/apis"
	"k8s.io/kubernetes/cmd/kubeadm/app/util/pubkeypin"

	"github.com/edgeadm/edgeadm/pkg/cmd"
	"github.com/edgeadm/edgeadm/pkg/cmd/exitcode"
	"github.com/edgeadm/edgeadm/pkg/cmd/join/phases"
	"github.com/edgeadm/edgeadm/pkg/cmd/printer"
	"github.com/edgeadm/edgeadm/pkg/host"
	"github.com/edgeadm/edgeadm/pkg/installpkg"
	"github.com/edgeadm/edgeadm/pkg/journal"
	"github.com/edgeadm/edgeadm/pkg/preflight"
)

// joinData is the state of one join run; it implements phases.Data.
type joinData struct {
	ctx     context.Context
	streams cmd.IOStreams
	o       *options
	deps    Deps
	dryRun  bool
	printer printer.Printer

	target   phases.Target
	nodeName string
	labels   map[string]string
	ignore   map[string]bool
	source   *installpkg.Source
	pkgSHA   string

	journal *journal.Journal
	h       host.Host

	nodeIPOnce sync.Once
	nodeIP     string
	nodeIPErr  error

	pkgOnce sync.Once
	pkg     *installpkg.Package
	pkgErr  error

	clusterInfo   *phases.ClusterInfo
	bootstrap     *clientcmdapi.Config
	alreadyJoined bool
	resuming      bool

	report *Report
	unlock func()
}

var _ phases.Data = (*joinData)(nil)

// newJoinData checks every input before anything else happens: a mistake
// on the command line is a usage error (exit 2), and nothing is read from
// or written to the host before the inputs are known to be well-formed.
func newJoinData(c *cobra.Command, args []string, o *options, streams cmd.IOStreams, deps Deps) (*joinData, error) {
	usage := func(format string, a ...any) error { return cmd.UsageError(c, fmt.Errorf(format, a...)) }
	if len(args) != 1 {
		return nil, usage("expected one argument, the API server address edge nodes use as <host:port>, got %d", len(args))
	}
	o.apiServerEndpoint = args[0]
	d := &joinData{ctx: c.Context(), streams: streams, o: o, deps: deps, dryRun: o.dryRun}
	if d.ctx == nil {
		d.ctx = context.Background()
	}
	if o.output != "" {
		p, err := printer.New(o.output)
		if err != nil {
			return nil, cmd.UsageError(c, err)
		}
		d.printer = p
	}
	t, err := ParseEndpoint(o.apiServerEndpoint)
	if err != nil {
		return nil, cmd.UsageError(c, err)
	}
	d.target = t
	if o.token == "" {
		return nil, usage("--token is required (\"edgeadm token create --print-join-command\" on a master prints the whole join command)")
	}
	if !bootstraputil.IsValidBootstrapToken(o.token) {
		// Never echo the value: it may be a real secret typed in the wrong place.
		return nil, usage("--token is not a bootstrap token: want <6 characters [a-z0-9]>.<16 characters [a-z0-9]>")
	}
	if len(o.discoveryTokenCACertHashes) == 0 && !o.discoveryTokenUnsafeSkipCA {
		return nil, usage("--discovery-token-ca-cert-hash is required, so that this host can tell the real cluster from an impostor " +
			"(\"edgeadm token create --print-join-command\" prints it); --discovery-token-unsafe-skip-ca-verification joins without that check")
	}
	for _, h := range o.discoveryTokenCACertHashes {
		if err := pubkeypin.NewSet().Allow(h); err != nil {
			return nil, usage("--discovery-token-ca-cert-hash %q: %v (want sha256:<64 hex digits>)", h, err)
		}
	}
	if o.installPkgPath == "" {
		return nil, usage("--install-pkg-path is required: %s", installpkg.AcceptedForms)
	}
	if d.source, err = installpkg.ParseSource(o.installPkgPath, deps.Env.Getenv); err != nil {
		return nil, cmd.UsageError(c, err)
	}
	if o.installPkgSHA256 != "" {
		if d.pkgSHA, err = installpkg.ParseSHA256(o.installPkgSHA256); err != nil {
			return nil, cmd.UsageError(c, err)
		}
	}
	if d.nodeName = o.nodeName; d.nodeName == "" {
		hn, err := deps.Hostname()
		if err != nil {
			return nil, usage("cannot read the host name (%v): pass --node-name", err)
		}
		d.nodeName = strings.ToLower(strings.TrimSpace(hn))
	}
	if errs := validation.IsDNS1123Subdomain(d.nodeName); len(errs) > 0 {
		return nil, usage("node name %q is not valid: %s (pass --node-name)", d.nodeName, strings.Join(errs, "; "))
	}
	if o.nodeIP != "" {
		a, err := netip.ParseAddr(o.nodeIP)
		if err != nil || a.IsLoopback() || a.IsUnspecified() || a.Zone() != "" {
			return nil, usage("--node-ip %q is not a unicast IP address of this host", o.nodeIP)
		}
	}
	if d.labels, err = NodeLabels(o.nodeLabels); err != nil {
		return nil, cmd.UsageError(c, err)
	}
	if d.ignore, err = preflight.ParseIgnore(o.ignorePreflightErrors); err != nil {
		return nil, cmd.UsageError(c, err)
	}
	if o.timeout <= 0 {
		return nil, usage("--timeout must be positive")
	}

	// Only now look at the host. Every command that changes it needs root;
	// so does reading edgeadm's journal (0700).
	if deps.Env.Euid() != 0 {
		return nil, exitcode.New(exitcode.PreflightFailed,
			errors.New("[ERROR IsPrivilegedUser]: edgeadm join changes system files and services: run it as root (sudo edgeadm join ...); nothing was changed"))
	}
	if deps.Lock != nil && !o.dryRun {
		unlock, err := deps.Lock()
		if err != nil {
			return nil, err
		}
		d.unlock = unlock
	}
	j, err := journal.Open(deps.Host)
	if err != nil {
		if d.unlock != nil {
			d.unlock()
		}
		return nil, exitcode.New(exitcode.PreflightFailed, fmt.Errorf("%w: run \"edgeadm reset\" to undo what the readable part of it records", err))
	}
	d.journal = j
	if _, err := j.Begin("join", d.Params()); err != nil {
		return nil, err
	}
	d.h = j
	if d.dryRun {
		d.h = host.NewDryRun(deps.Host, streams.ErrOut)
	}
	d.report = &Report{NodeName: d.nodeName, Endpoint: t.Endpoint, Server: t.Server(), DryRun: d.dryRun, start: time.Now()}
	return d, nil
}

// ParseEndpoint checks <host>:<port>: an IP address or a DNS name, and a port.
func ParseEndpoint(s string) (phases.Target, error) {
	h, port, err := net.SplitHostPort(s)
	if err != nil {
		return phases.Target{}, fmt.Errorf("the API server address %q is not <host>:<port> (%v)", s, err)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return phases.Target{}, fmt.Errorf("the API server address %q has no valid port (1-65535)", s)
	}
	if a, err := netip.ParseAddr(h); err == nil {
		if a.Zone() != "" || a.IsUnspecified() || a.IsMulticast() {
			return phases.Target{}, fmt.Errorf("the API server address %q is not a unicast IP address", s)
		}
		return phases.Target{Endpoint: s, Host: a.String(), Port: port, IsIP: true}, nil
	}
	h = strings.ToLower(h)
	if errs := validation.IsDNS1123Subdomain(h); len(errs) > 0 || !strings.Contains(h, ".") && h != "localhost" {
		return phases.Target{}, fmt.Errorf("the API server address %q: %q is neither an IP address nor a DNS name", s, h)
	}
	return phases.Target{Endpoint: s, Host: h, Port: port}, nil
}

// NodeLabels checks --node-labels and adds the edge label. The kubelet
// refuses labels in the kubernetes.io and k8s.io namespaces it does not own
// (node-role.kubernetes.io/... among them), so they are refused here first.
func NodeLabels(in map[string]string) (map[string]string, error) {
	out := map[string]string{phases.EdgeNodeLabel: phases.EdgeNodeLabelValue}
	for k, v := range in {
		if errs := validation.IsQualifiedName(k); len(errs) > 0 {
			return nil, fmt.Errorf("--node-labels: %q is not a label key: %s", k, strings.Join(errs, "; "))
		}
		if errs := validation.IsValidLabelValue(v); len(errs) > 0 {
			return nil, fmt.Errorf("--node-labels: %q is not a label value: %s", v, strings.Join(errs, "; "))
		}
		if ns, _, ok := strings.Cut(k, "/"); ok && restrictedNamespace(ns) && !kubeletapis.IsKubeletLabel(k) {
			return nil, fmt.Errorf("--node-labels: a kubelet may not set %q (the kubernetes.io and k8s.io namespaces are reserved): label the node from a master instead", k)
		}
		if k == phases.EdgeNodeLabel && v != phases.EdgeNodeLabelValue {
			return nil, fmt.Errorf("--node-labels: %s must be %q on an edge node", k, phases.EdgeNodeLabelValue)
		}
		out[k] = v
	}
	return out, nil
}

func restrictedNamespace(ns string) bool {
	for _, r := range []string{"kubernetes.io", "k8s.io"} {
		if ns == r || strings.HasSuffix(ns, "."+r) {
			return true
		}
	}
	return false
}

func (d *joinData) Context() context.Context                      { return d.ctx }
func (d *joinData) Host() host.Host                               { return d.h }
func (d *joinData) Paths() host.Paths                             { return d.deps.Paths }
func (d *joinData) DryRun() bool                                  { return d.dryRun }
func (d *joinData) Out() io.Writer                                { return d.streams.ErrOut }
func (d *joinData) Env() *phases.Env                              { return d.deps.Env }
func (d *joinData) Target() phases.Target                         { return d.target }
func (d *joinData) Token() string                                 { return d.o.token }
func (d *joinData) CACertHashes() []string                        { return d.o.discoveryTokenCACertHashes }
func (d *joinData) UnsafeSkipCAVerification() bool                { return d.o.discoveryTokenUnsafeSkipCA }
func (d *joinData) NodeName() string                              { return d.nodeName }
func (d *joinData) NodeLabels() map[string]string                 { return maps.Clone(d.labels) }
func (d *joinData) IgnorePreflightErrors() map[string]bool        { return d.ignore }
func (d *joinData) Timeout() time.Duration                        { return d.o.timeout }
func (d *joinData) Journal() *journal.Journal                     { return d.journal }
func (d *joinData) Resuming() bool                                { return d.resuming }
func (d *joinData) SetResuming(b bool)                            { d.resuming = b; d.report.Resumed = b }
func (d *joinData) AlreadyJoined() bool                           { return d.alreadyJoined }
func (d *joinData) SetAlreadyJoined(b bool)                       { d.alreadyJoined = b; d.report.AlreadyJoined = b }
func (d *joinData) ClusterInfo() *phases.ClusterInfo              { return d.clusterInfo }
func (d *joinData) SetClusterInfo(c *phases.ClusterInfo)          { d.clusterInfo = c }
func (d *joinData) SetBootstrapKubeconfig(c *clientcmdapi.Config) { d.bootstrap = c }

func (d *joinData) Warn(name, msg string) {
	line := msg
	if name != "" {
		line = fmt.Sprintf("[WARNING %s]: %s", name, msg)
		fmt.Fprintln(d.streams.ErrOut, "\t"+line)
	}
	d.report.Warnings = append(d.report.Warnings, line)
}

func (d *joinData) Params() phases.Params {
	p := phases.Params{
		Endpoint:         d.target.Endpoint,
		NodeName:         d.nodeName,
		NodeLabels:       d.labels,
		InstallPkgSHA256: d.pkgSHA,
	}
	if d.source != nil {
		p.InstallPkgPath = d.source.String()
	}
	return p
}

func (d *joinData) NodeIP() (string, error) {
	d.nodeIPOnce.Do(func() {
		if d.o.nodeIP != "" {
			d.nodeIP = d.o.nodeIP
			return
		}
		d.nodeIP, d.nodeIPErr = phases.DetectNodeIP(d.ctx, d.deps.Env, d.target.Endpoint)
	})
	return d.nodeIP, d.nodeIPErr
}

func (d *joinData) Package() (*installpkg.Package, error) {
	d.pkgOnce.Do(func() {
		dir := d.deps.WorkDir
		if _, err := os.Stat(dir); err != nil {
			dir = os.TempDir()
		}
		d.pkg, d.pkgErr = d.deps.Env.OpenPackage(d.ctx, installpkg.Options{
			Source: d.source, SHA256: d.pkgSHA, Dir: dir, Progress: d.streams.ErrOut,
		})
	})
	return d.pkg, d.pkgErr
}

func (d *joinData) BootstrapKubeconfig() (*clientcmdapi.Config, error) {
	if d.bootstrap != nil {
		return d.bootstrap, nil
	}
	data, err := d.h.ReadFile(d.deps.Paths.BootstrapKubeconfig)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s is missing: run the discovery phase first", d.deps.Paths.BootstrapKubeconfig)
	}
	if err != nil {
		return nil, err
	}
	kc, err := clientcmd.Load(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", d.deps.Paths.BootstrapKubeconfig, err)
	}
	d.bootstrap = kc
	return kc, nil
}

func (d *joinData) setPhase(name string) {
	if d.journal != nil {
		d.journal.SetPhase(name)
	}
}

// close removes the package's temporary copy.
func (d *joinData) close() {
	if d.pkg != nil {
		_ = d.pkg.Close()
		d.pkg = nil
	}
}
