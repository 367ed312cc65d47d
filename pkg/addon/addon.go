package addon

import (
	"context"
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
	keyutil "k8s.io/client-go/util/keyutil"

	"github.com/edgeadm/edgeadm/pkg/clusterfacts"
	"github.com/edgeadm/edgeadm/pkg/state"
)

// Options are addon's inputs.
type Options struct {
	RESTConfig *rest.Config
	// CACertPath is --ca.cert; CAKeyPath is --ca.key (optional: nothing addon
	// makes today is signed, so it is only checked against the CA).
	CACertPath, CAKeyPath string
	Settings
	DryRun   bool
	Progress io.Writer
	// Tunnel is where the tunnel step finds this host's files (used when
	// Settings.Tunnel is on).
	Tunnel TunnelOptions
}

// Summary is what addon prints at the end (-o json|yaml on a real run).
type Summary struct {
	DryRun           bool                `json:"dryRun"`
	MasterPublicAddr string              `json:"masterPublicAddr"`
	ImageRepository  string              `json:"imageRepository"`
	EdgeVersion      string              `json:"edgeVersion"`
	Facts            *clusterfacts.Facts `json:"facts"`
	Objects          []ObjectResult      `json:"objects"`
	Counts           map[Outcome]int     `json:"counts"`
	Notes            []string            `json:"notes,omitempty"`
	Tunnel           *TunnelSummary      `json:"tunnel,omitempty"`
	Record           string              `json:"record"`
	Duration         string              `json:"duration"`
}

// ErrBadInput marks a failure caused by the user's input (files, flags);
// errors.Is(err, ErrBadInput) finds it, and its message is the cause's.
var ErrBadInput = errors.New("bad input")

type inputError struct{ err error }

func (e inputError) Error() string        { return e.err.Error() }
func (e inputError) Unwrap() error        { return e.err }
func (e inputError) Is(target error) bool { return target == ErrBadInput }

func badInput(err error) error { return inputError{err} }

// Run learns the facts, plans, checks permissions, and writes (or, with
// DryRun, only validates server-side) every object.
func Run(ctx context.Context, o Options) (*Summary, *Execution, error) {
	began := time.Now()
	progress := o.Progress
	if progress == nil {
		progress = io.Discard
	}
	say := func(format string, args ...any) { fmt.Fprintf(progress, format+"\n", args...) }

	cfg := rest.CopyConfig(o.RESTConfig)
	if cfg.Timeout == 0 {
		cfg.Timeout = 30 * time.Second
	}
	// Many small concurrent requests: do not let client-side throttling
	// serialize them.
	cfg.QPS, cfg.Burst = 200, 400
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, nil, err
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, nil, err
	}
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(client.Discovery()))

	t := time.Now()
	facts, err := clusterfacts.Gather(ctx, clusterfacts.Inputs{Client: client, RESTConfig: cfg, CACertPath: o.CACertPath})
	if err != nil {
		return nil, nil, err
	}
	say("[facts] Kubernetes %s, apiserver port %d (%s), service CIDR %s (%s), cluster DNS %s (%s), domain %s (%s) (%s)",
		facts.ServerVersion, facts.SecurePort, facts.SecurePortSource, facts.ServiceCIDR, facts.ServiceCIDRSource,
		facts.ClusterDNS, facts.ClusterDNSSource, facts.DNSDomain, facts.DNSDomainSource, round(time.Since(t)))
	say("[facts] CA from %s (%s); kubeadm cluster: %t; bootstrap-token auth: %s (%s); bootstrapsigner: %s (%s)",
		facts.CASource, facts.CAHash, facts.Kubeadm, facts.BootstrapTokenAuth, facts.BootstrapTokenAuthReason,
		facts.BootstrapSigner, facts.BootstrapSignerReason)
	for _, w := range facts.Warnings {
		say("[facts] WARNING: %s", w)
	}

	if o.CAKeyPath != "" {
		if err := CheckCAKey(o.CAKeyPath, facts.CA); err != nil {
			return nil, nil, badInput(err)
		}
		say("[facts] CA key %s matches the CA (not used: nothing addon makes is signed)", o.CAKeyPath)
	}

	settings := o.Settings
	if settings.MasterPublicAddr == "" {
		host, ok := publicHostFromServer(cfg.Host)
		if !ok {
			return nil, nil, badInput(fmt.Errorf("--master-public-addr is required: the kubeconfig's server %s is a loopback address edge nodes cannot dial", cfg.Host))
		}
		settings.MasterPublicAddr = host
		say("[facts] WARNING: --master-public-addr not given; using the kubeconfig's server host %s: pass --master-public-addr if edge nodes reach the apiserver another way", host)
	}
	if _, err := NormalizeAddr(settings.MasterPublicAddr, facts.SecurePort); err != nil {
		return nil, nil, badInput(err)
	}

	var tun *tunnelStep
	if settings.Tunnel {
		if tun, err = prepareTunnel(facts, o.Tunnel); err != nil {
			return nil, nil, err
		}
		tun.progress = progress
		if tun.opts.Waiter == nil {
			tun.opts.Waiter = ClusterWaiter{Client: client, RESTConfig: cfg, Paths: tun.master.Paths}
		}
	}

	plan, err := MakePlan(facts, settings)
	if err != nil {
		return nil, nil, err
	}
	for _, n := range plan.Notes {
		say("[plan] NOTE: %s", n)
	}

	t = time.Now()
	perms, err := Permissions(mapper, plan)
	if err != nil {
		return nil, nil, err
	}
	if tun != nil {
		perms = append(perms, TunnelPermissions()...)
	}
	if err := CheckAccess(ctx, client, perms); err != nil {
		return nil, nil, err
	}
	say("[preflight] %d permissions checked (%s)", len(dedupe(perms)), round(time.Since(t)))
	var serverPod []byte
	if tun != nil {
		if err := tun.checkCluster(ctx, client); err != nil {
			return nil, nil, err
		}
		if serverPod, err = tun.serverPod(plan, settings); err != nil {
			return nil, nil, err
		}
		say("[tunnel] kubeadm control plane, %d masters; this host is %s (%s)", len(tun.masters.All), tun.masters.Local.Node, tun.masters.Local.Endpoint)
	}
	prev, err := state.Get(ctx, client)
	if err != nil {
		return nil, nil, err
	}

	t = time.Now()
	ex := &Executor{Client: client, Dynamic: dyn, Mapper: mapper, DryRun: o.DryRun, Progress: progress}
	exe, err := ex.Execute(ctx, plan, prev)
	if err != nil {
		return nil, nil, err
	}
	s := &Summary{
		DryRun: o.DryRun, MasterPublicAddr: plan.Config.MasterPublicAddr, ImageRepository: plan.Config.ImageRepository,
		EdgeVersion: plan.Config.EdgeVersion, Facts: facts, Objects: exe.Objects, Counts: map[Outcome]int{},
		Notes: plan.Notes, Record: state.Namespace + "/" + state.Name,
	}
	for _, r := range exe.Objects {
		s.Counts[r.Outcome]++
	}
	say("[apply] %d objects: %s (%s)", len(exe.Objects), CountsString(s.Counts), round(time.Since(t)))
	if tun != nil {
		if o.DryRun {
			note, err := GetTunnelNote(ctx, client)
			if err != nil {
				return nil, nil, err
			}
			s.Tunnel = tun.summary(note)
			say("[tunnel] dry run: would write the proxy server pod on %s, add the egress selector to its API server (original kept in %s), wait for /readyz and a node proxy, and record the change in kube-system/kubeadm-config",
				s.Tunnel.LocalMaster, s.Tunnel.Backup)
		} else if s.Tunnel, err = tun.configure(ctx, client, serverPod); err != nil {
			return nil, nil, err
		}
	}
	s.Duration = round(time.Since(began)).String()
	return s, exe, nil
}

// CountsString renders counts in a fixed order.
func CountsString(c map[Outcome]int) string {
	var parts []string
	for _, o := range []Outcome{Created, Applied, Adopted, WouldCreate, WouldApply, WouldAdopt} {
		if c[o] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", c[o], o))
		}
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

// publicHostFromServer returns the kubeconfig server's host when it is not
// a loopback address.
func publicHostFromServer(server string) (string, bool) {
	u, err := url.Parse(server)
	if err != nil || u.Hostname() == "" {
		return "", false
	}
	h := u.Hostname()
	if h == "localhost" {
		return "", false
	}
	if ip := net.ParseIP(h); ip != nil && (ip.IsLoopback() || ip.IsUnspecified()) {
		return "", false
	}
	return h, true
}

// CheckCAKey verifies that the private key in path belongs to ca.
func CheckCAKey(path string, ca *x509.Certificate) error {
	key, err := keyutil.PrivateKeyFromFile(path)
	if err != nil {
		return fmt.Errorf("--ca.key %s: %v: pass the cluster CA's private key, or leave --ca.key out (addon signs nothing)", path, err)
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return fmt.Errorf("--ca.key %s holds no signing key: pass the cluster CA's private key", path)
	}
	type equaler interface{ Equal(crypto.PublicKey) bool }
	pub, ok := signer.Public().(equaler)
	if !ok || !pub.Equal(ca.PublicKey) {
		return fmt.Errorf("--ca.key %s does not match the CA certificate %s: pass the key of that CA, or leave --ca.key out (addon signs nothing)", path, ca.Subject.CommonName)
	}
	return nil
}

// Permissions lists what addon needs to be allowed for plan p.
func Permissions(mapper meta.RESTMapper, p *Plan) ([]Permission, error) {
	groups := crdGroups(p.Items)
	plurals := map[string]string{}
	for _, it := range p.Items {
		if it.Object.GroupVersionKind().GroupKind() == crdGK {
			g, _, _ := unstructuredString(it.Object.Object, "spec", "group")
			k, _, _ := unstructuredString(it.Object.Object, "spec", "names", "kind")
			pl, _, _ := unstructuredString(it.Object.Object, "spec", "names", "plural")
			plurals[g+"/"+k] = pl
		}
	}
	var perms []Permission
	for _, it := range p.Items {
		gvk := it.Object.GroupVersionKind()
		var resource string
		if groups[gvk.Group] {
			resource = plurals[gvk.Group+"/"+gvk.Kind]
		} else {
			m, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
			if err != nil {
				return nil, fmt.Errorf("the cluster does not serve %s (needed for %s): %w", gvk, it.Ref(), err)
			}
			resource = m.Resource.Resource
		}
		base := Permission{Group: gvk.Group, Resource: resource, Namespace: it.Object.GetNamespace()}
		verbs := []string{"create", "get"}
		if it.Mode == Apply {
			verbs = append(verbs, "patch")
		}
		for _, v := range verbs {
			pp := base
			pp.Verb = v
			if v != "create" {
				pp.Name = it.Object.GetName()
			}
			perms = append(perms, pp)
		}
	}
	for _, v := range []string{"get", "create", "patch"} {
		pp := Permission{Verb: v, Resource: "configmaps", Namespace: state.Namespace}
		if v != "create" {
			pp.Name = state.Name
		}
		perms = append(perms, pp)
	}
	return perms, nil
}
