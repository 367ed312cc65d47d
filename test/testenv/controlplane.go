package testenv

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	kubeletconfig "k8s.io/kubelet/config/v1beta1"
)

// Flavour is the kind of cluster a test gets.
type Flavour string

const (
	// KubeadmLike has what `kubeadm init` leaves: kube-public/cluster-info,
	// kube-system kubeadm-config and kubelet-config, and the bootstrap RBAC.
	KubeadmLike Flavour = "kubeadm-like"
	// Bare has none of those, like a hand-built or managed cluster.
	Bare Flavour = "bare"
	// BareNoBootstrapSigner is Bare with the controller-manager's bootstrapsigner
	// off, so nobody signs cluster-info.
	BareNoBootstrapSigner Flavour = "bare-no-bootstrapsigner"
)

// ControlPlaneOptions choose the cluster. Zero values mean kubeadm's defaults.
type ControlPlaneOptions struct {
	Flavour       Flavour // default KubeadmLike
	ServiceCIDR   string  // default 10.96.0.0/12
	PodCIDR       string  // default 10.244.0.0/16
	DNSDomain     string  // default cluster.local
	APIServerPort int     // default 6443

	// KubeletConfig, for KubeadmLike, adjusts the KubeletConfiguration uploaded
	// to kube-system/kubelet-config, as a KubeletConfiguration document in a
	// `kubeadm init --config` file would. On a cgroup v1 host failCgroupV1 is
	// already false (kubeadm init refuses such a host otherwise).
	KubeletConfig func(*kubeletconfig.KubeletConfiguration)
}

// withDefaults fills in kubeadm's defaults and checks what was given.
func (o ControlPlaneOptions) withDefaults() (ControlPlaneOptions, error) {
	if o.Flavour == "" {
		o.Flavour = KubeadmLike
	}
	switch o.Flavour {
	case KubeadmLike, Bare, BareNoBootstrapSigner:
	default:
		return o, fmt.Errorf("unknown control plane flavour %q", o.Flavour)
	}
	if o.ServiceCIDR == "" {
		o.ServiceCIDR = "10.96.0.0/12"
	}
	if o.PodCIDR == "" {
		o.PodCIDR = "10.244.0.0/16"
	}
	if o.DNSDomain == "" {
		o.DNSDomain = "cluster.local"
	}
	if o.APIServerPort == 0 {
		o.APIServerPort = 6443
	}
	for name, cidr := range map[string]string{"service": o.ServiceCIDR, "pod": o.PodCIDR} {
		p, err := netip.ParsePrefix(cidr)
		if err != nil || !p.Addr().Is4() || p.Bits() > 28 {
			return o, fmt.Errorf("%s CIDR %q: want an IPv4 prefix of /28 or wider", name, cidr)
		}
	}
	if o.APIServerPort < 1 || o.APIServerPort > 65535 ||
		o.APIServerPort == etcdClientPort || o.APIServerPort == etcdPeerPort ||
		o.APIServerPort == controllerManagerPort || o.APIServerPort == schedulerPort {
		return o, fmt.Errorf("apiserver port %d is out of range or taken by another control plane component", o.APIServerPort)
	}
	if strings.Trim(o.DNSDomain, ".") != o.DNSDomain || o.DNSDomain == "" {
		return o, fmt.Errorf("DNS domain %q: want a name like cluster.local", o.DNSDomain)
	}
	return o, nil
}

// ControlPlane is a running etcd, kube-apiserver, kube-controller-manager and
// kube-scheduler inside the network's cloud namespace.
type ControlPlane struct {
	Net     *Network
	Options ControlPlaneOptions // with defaults filled in
	// Dir holds the PKI, kubeconfigs and logs of this control plane (mode 0700).
	Dir string
	// AdminKubeconfig is a cluster-admin kubeconfig usable from the host
	// namespace: it dials CloudIP and verifies the certificate as "kubernetes".
	AdminKubeconfig string
	// CACertPath and CAKeyPath are the cluster CA, as /etc/kubernetes/pki/ca.{crt,key}.
	CACertPath, CAKeyPath string
	RESTConfig            *rest.Config
	Client                kubernetes.Interface

	// PKIDir holds every certificate and key, named as in /etc/kubernetes/pki
	// (ca, apiserver, apiserver-kubelet-client, front-proxy-ca,
	// front-proxy-client, sa.key/sa.pub, admin, controller-manager, scheduler).
	PKIDir string
	// BootstrapToken is the token `kubeadm init` made (KubeadmLike only; TTL
	// 24h, usages signing and authentication, group
	// system:bootstrappers:kubeadm:default-node-token).
	BootstrapToken string
	// ReadyAfter says how long after the start each component was ready
	// ("etcd", "kube-apiserver", "kubeadm-objects", "kube-controller-manager",
	// "kube-scheduler", and "total").
	ReadyAfter map[string]time.Duration

	procs   []*Process
	pki     *PKI
	layout  layout
	stopped bool
}

// PublicEndpoint is the host:port edge hosts dial: the "public" address that
// the apiserver certificate does not carry.
func (c *ControlPlane) PublicEndpoint() string {
	return net.JoinHostPort(c.Net.CloudIP.String(), strconv.Itoa(c.Options.APIServerPort))
}

// ServiceIP is the first address of the service CIDR: the kubernetes Service.
func (c *ControlPlane) ServiceIP() netip.Addr {
	return netip.MustParsePrefix(c.Options.ServiceCIDR).Masked().Addr().Next()
}

// CACertPEM is the cluster CA certificate in PEM, as cluster-info carries it.
func (c *ControlPlane) CACertPEM() []byte { return c.pki.CAPEM() }

// Processes are the control plane's processes in start order.
func (c *ControlPlane) Processes() []*Process { return append([]*Process(nil), c.procs...) }

// Bounds of each wait while starting. The whole start takes about 15 s on a
// two-core machine; these leave room for a loaded CI runner.
const (
	etcdReadyTimeout      = 30 * time.Second
	apiserverReadyTimeout = 90 * time.Second
	componentReadyTimeout = 60 * time.Second
	pollInterval          = 100 * time.Millisecond
	stopGrace             = 10 * time.Second
)

// requiredBinaries are the cached binaries a control plane runs.
var requiredBinaries = []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler"}

// StartControlPlane starts a control plane of the given flavour in n's cloud
// namespace and waits, bounded, until it is ready. On failure it stops what it
// started, removes Dir and returns an error with the tail of the failing
// process's log.
func StartControlPlane(ctx context.Context, n *Network, paths Paths, opts ControlPlaneOptions) (*ControlPlane, error) {
	began := time.Now()
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	for _, b := range requiredBinaries {
		if _, err := os.Stat(paths.BinPath(b)); err != nil {
			return nil, fmt.Errorf("%w: %s missing (%v)", ErrNoCache, b, err)
		}
	}
	dir, err := os.MkdirTemp("", fmt.Sprintf("edgeadm-cp%d-", n.Index))
	if err != nil {
		return nil, fmt.Errorf("control plane folder: %w", err)
	}
	c := &ControlPlane{Net: n, Options: opts, Dir: dir, ReadyAfter: map[string]time.Duration{}}
	if err := c.start(ctx, paths, began); err != nil {
		return nil, errors.Join(err, c.Stop(context.WithoutCancel(ctx)))
	}
	c.ReadyAfter["total"] = time.Since(began)
	return c, nil
}

func (c *ControlPlane) start(ctx context.Context, paths Paths, began time.Time) error {
	if err := c.writeFiles(); err != nil {
		return err
	}
	ns := c.Net.CloudNS
	probe := netnsHTTPClient(ns)
	mark := func(name string) { c.ReadyAfter[name] = time.Since(began) }

	etcd, err := c.startProcess(paths, "etcd", etcdArgs(c.layout))
	if err != nil {
		return err
	}
	if err := c.waitReady(ctx, etcd, etcdReadyTimeout, func(ctx context.Context) (bool, error) {
		return probeOK(ctx, probe, etcdURL(etcdClientPort)+"/health")
	}); err != nil {
		return err
	}
	mark("etcd")

	apiserver, err := c.startProcess(paths, "kube-apiserver", apiserverArgs(c.layout, c.Options, c.Net.CloudIP.String()))
	if err != nil {
		return err
	}
	// /readyz through the public address and the admin credentials, from the
	// host namespace: the way tests will reach it.
	if err := c.waitReady(ctx, apiserver, apiserverReadyTimeout, func(ctx context.Context) (bool, error) {
		body, err := c.Client.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
		if err != nil {
			return false, err
		}
		return strings.TrimSpace(string(body)) == "ok", nil
	}); err != nil {
		return err
	}
	mark("kube-apiserver")

	cm, err := c.startProcess(paths, "kube-controller-manager", controllerManagerArgs(c.layout, c.Options))
	if err != nil {
		return err
	}
	sched, err := c.startProcess(paths, "kube-scheduler", schedulerArgs(c.layout))
	if err != nil {
		return err
	}
	// The flavour's objects go in while the controller-manager and scheduler
	// start, as with kubeadm (whose init uploads them before either is needed).
	if c.Options.Flavour == KubeadmLike {
		if err := uploadKubeadmObjects(ctx, c); err != nil {
			return fmt.Errorf("%w%s", err, logTail(apiserver))
		}
		mark("kubeadm-objects")
	}
	for _, w := range []struct {
		proc  *Process
		port  int
		lease string
	}{{cm, controllerManagerPort, "kube-controller-manager"}, {sched, schedulerPort, "kube-scheduler"}} {
		url := "https://127.0.0.1:" + strconv.Itoa(w.port) + "/healthz"
		if err := c.waitReady(ctx, w.proc, componentReadyTimeout, func(ctx context.Context) (bool, error) {
			if ok, err := probeOK(ctx, probe, url); !ok {
				return false, err
			}
			// Healthy is not yet working: its controllers start once it
			// leads, so wait for it to hold its leader lease.
			l, err := c.Client.CoordinationV1().Leases(metav1.NamespaceSystem).Get(ctx, w.lease, metav1.GetOptions{})
			if err != nil {
				return false, err
			}
			if l.Spec.HolderIdentity == nil || *l.Spec.HolderIdentity == "" {
				return false, fmt.Errorf("lease %s has no holder yet", w.lease)
			}
			return true, nil
		}); err != nil {
			return err
		}
		mark(w.proc.Name)
	}
	return nil
}

// writeFiles makes the PKI and the kubeconfigs, and the admin client.
func (c *ControlPlane) writeFiles() error {
	pki, err := NewPKI(c.Dir+"/pki", PKISpec{ServiceIP: net.IP(c.ServiceIP().AsSlice()), DNSDomain: c.Options.DNSDomain})
	if err != nil {
		return err
	}
	c.pki = pki
	c.PKIDir = pki.Dir
	c.layout = layout{dir: c.Dir, pki: pki}
	c.CACertPath = pki.CertPath(caBase)
	c.CAKeyPath = pki.KeyPath(caBase)
	c.AdminKubeconfig = c.layout.adminConf()
	local := "https://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(c.Options.APIServerPort))
	confs := []struct {
		path string
		spec kubeconfigSpec
	}{
		// The admin dials the public address and checks the certificate
		// against a name it does carry.
		{c.AdminKubeconfig, kubeconfigSpec{Server: "https://" + c.PublicEndpoint(), TLSServerName: "kubernetes", User: "kubernetes-admin", CertBase: adminBase}},
		{c.layout.controllerConf(), kubeconfigSpec{Server: local, User: "system:kube-controller-manager", CertBase: controllerManagerBase}},
		{c.layout.schedulerConf(), kubeconfigSpec{Server: local, User: "system:kube-scheduler", CertBase: schedulerBase}},
	}
	for _, k := range confs {
		if err := writeKubeconfig(k.path, pki, k.spec); err != nil {
			return err
		}
	}
	c.RESTConfig, c.Client, err = adminClient(c.AdminKubeconfig)
	return err
}

// adminClient is the test's admin client from an admin kubeconfig.
func adminClient(kubeconfig string) (*rest.Config, *kubernetes.Clientset, error) {
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return nil, nil, fmt.Errorf("admin kubeconfig: %w", err)
	}
	cfg.QPS, cfg.Burst = 50, 100
	cfg.Timeout = 10 * time.Second
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, nil, fmt.Errorf("admin client: %w", err)
	}
	return cfg, client, nil
}

// startProcess runs a cached binary inside the cloud namespace, logging to Dir.
func (c *ControlPlane) startProcess(paths Paths, name string, args []string) (*Process, error) {
	argv := InNetns(c.Net.CloudNS, append([]string{paths.BinPath(name)}, args...)...)
	p, err := StartProcess(name, c.Dir, argv, nil)
	if err != nil {
		return nil, err
	}
	c.procs = append(c.procs, p)
	return p, nil
}

// waitReady polls cond until it holds, for at most timeout. It gives up at once
// when any process of the control plane exits, naming that one. The error
// carries the tail of the log of the process that failed.
func (c *ControlPlane) waitReady(ctx context.Context, p *Process, timeout time.Duration, cond func(context.Context) (bool, error)) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var died *Process
	var diedErr error
	err := Poll(ctx, pollInterval, func(ctx context.Context) (bool, error) {
		for _, q := range c.procs {
			if exited, err := q.Exited(); exited {
				died, diedErr = q, err
				cancel()
				return false, nil
			}
		}
		return cond(ctx)
	})
	if died != nil {
		return fmt.Errorf("%s exited while waiting for %s to be ready (%v)%s", died.Name, p.Name, diedErr, logTail(died))
	}
	if err != nil {
		return fmt.Errorf("%s not ready within %s: %w%s", p.Name, timeout, err, logTail(p))
	}
	return nil
}

// logTailLines is how much of a failing process's log an error carries.
const logTailLines = 25

// logTail is the end of p's log, formatted to follow an error message.
func logTail(p *Process) string {
	data, err := os.ReadFile(p.LogPath)
	if err != nil {
		return fmt.Sprintf("\n(no log of %s: %v)", p.Name, err)
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > logTailLines {
		lines = lines[len(lines)-logTailLines:]
	}
	return fmt.Sprintf("\n--- last %d lines of the %s log ---\n%s", len(lines), p.Name, strings.Join(lines, "\n"))
}

// Stop ends every process of the control plane, by PID, in reverse start order,
// and removes Dir. Each process gets a bounded grace period before SIGKILL. It
// keeps going past errors, returns them all, and is safe to call twice.
func (c *ControlPlane) Stop(ctx context.Context) error {
	if c.stopped {
		return nil
	}
	c.stopped = true
	grace := stopGrace
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < grace*time.Duration(len(c.procs)+1) {
		grace = max(time.Until(dl)/time.Duration(len(c.procs)+1), 100*time.Millisecond)
	}
	var errs []error
	for i := len(c.procs) - 1; i >= 0; i-- {
		if err := c.procs[i].Stop(grace); err != nil {
			errs = append(errs, err)
		}
	}
	if c.Dir != "" {
		if err := os.RemoveAll(c.Dir); err != nil {
			errs = append(errs, fmt.Errorf("remove control plane folder: %w", err))
		}
	}
	return errors.Join(errs...)
}

// RSS is the resident memory of each running process of the control plane, in
// bytes, from /proc/<pid>/status.
func (c *ControlPlane) RSS() (map[string]int64, error) {
	out := map[string]int64{}
	for _, p := range c.procs {
		data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.PID()))
		if err != nil {
			return out, fmt.Errorf("rss of %s: %w", p.Name, err)
		}
		for _, line := range strings.Split(string(data), "\n") {
			if f := strings.Fields(line); len(f) == 3 && f[0] == "VmRSS:" {
				kb, err := strconv.ParseInt(f[1], 10, 64)
				if err != nil {
					return out, fmt.Errorf("rss of %s: %w", p.Name, err)
				}
				out[p.Name] = kb * 1024
			}
		}
	}
	return out, nil
}
