package addon

import (
	"context"
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	kubeadmconstants "k8s.io/kubernetes/cmd/kubeadm/app/constants"

	"github.com/edgeadm/edgeadm/manifests"
	"github.com/edgeadm/edgeadm/pkg/clusterfacts"
	"github.com/edgeadm/edgeadm/pkg/tunnel"
)

// TunnelOptions configure addon's tunnel step (docs/tunnel.md).
type TunnelOptions struct {
	// Root prefixes every path on this host: "/" on a master, a temporary
	// folder in tests.
	Root string
	// Paths default to tunnel.DefaultPaths().
	Paths *tunnel.Paths
	// Waiter watches the masters; nil: ClusterWaiter on addon's client.
	Waiter MasterWaiter
	// Now is the clock the server's certificate is dated by; nil: time.Now.
	Now func() time.Time
}

func (o TunnelOptions) paths() tunnel.Paths {
	if o.Paths != nil {
		return *o.Paths
	}
	return tunnel.DefaultPaths()
}

// Master is this host as a master.
func (o TunnelOptions) Master() tunnel.Master {
	root := o.Root
	if root == "" {
		root = "/"
	}
	return tunnel.Master{Root: root, Paths: o.paths()}
}

// MasterInfo is one control-plane node, as its kube-apiserver mirror pod
// shows it.
type MasterInfo struct {
	Node string `json:"node"`
	// Endpoint is the address kubeadm advertises for its API server.
	Endpoint string `json:"endpoint"`
	// APIServerPod is the mirror pod's name in kube-system.
	APIServerPod string `json:"-"`
}

// ProxyServerPod is the proxy server's mirror pod on this master.
func (m MasterInfo) ProxyServerPod() string { return "konnectivity-server-" + strings.ToLower(m.Node) }

// Masters are the control-plane nodes, and which of them addon runs on.
type Masters struct {
	All   []MasterInfo
	Local *MasterInfo
}

// FindMasters lists the kube-apiserver mirror pods (kubeadm's labels) and
// picks the one whose advertised endpoint is this host's manifest's.
func FindMasters(ctx context.Context, client kubernetes.Interface, local tunnel.LocalAPIServer) (Masters, error) {
	pods, err := client.CoreV1().Pods(metav1.NamespaceSystem).List(ctx, metav1.ListOptions{LabelSelector: "component=kube-apiserver,tier=control-plane"})
	if err != nil {
		return Masters{}, fmt.Errorf("list the kube-apiserver pods in kube-system: %w", err)
	}
	var ms Masters
	for _, p := range pods.Items {
		if p.Spec.NodeName == "" {
			continue
		}
		ms.All = append(ms.All, MasterInfo{Node: p.Spec.NodeName, APIServerPod: p.Name,
			Endpoint: p.Annotations[kubeadmconstants.KubeAPIServerAdvertiseAddressEndpointAnnotationKey]})
	}
	sort.Slice(ms.All, func(i, j int) bool { return ms.All[i].Node < ms.All[j].Node })
	for i := range ms.All {
		if local.Present && local.Endpoint != "" && ms.All[i].Endpoint == local.Endpoint {
			ms.Local = &ms.All[i]
		}
	}
	return ms, nil
}

// MasterWaiter waits for what the kubelet of a master does with the files
// addon writes, and checks the result.
type MasterWaiter interface {
	// ProxyServerReady returns once the proxy server pod on m is Ready: an
	// agent is connected to it.
	ProxyServerReady(ctx context.Context, m MasterInfo) error
	// APIServerReady returns once m's API server runs with (configured) or
	// without the egress flag and answers /readyz.
	APIServerReady(ctx context.Context, m MasterInfo, configured bool) error
	// Before lists, before m's API server is changed, what answers
	// through it over the "cluster" egress (aggregated APIs, webhook
	// servers).
	Before(ctx context.Context, m MasterInfo) (Reachable, error)
	// Verify checks that m's API server reaches a kubelet through the
	// tunnel (node proxy to m's own node), and still reaches what answered
	// before (Before's result): only those may fail it.
	Verify(ctx context.Context, m MasterInfo, before Reachable) error
}

// TunnelSummary is what the tunnel step did (or, in a dry run, would do).
type TunnelSummary struct {
	LocalMaster string `json:"localMaster"`
	// APIServerChanged: this run changed the local API server's manifest.
	APIServerChanged bool `json:"apiServerChanged"`
	// KubeadmConfigChanged: this run patched kubeadm-config.
	KubeadmConfigChanged bool `json:"kubeadmConfigChanged"`
	// PendingMasters have not been configured yet: addon must run on each.
	PendingMasters []string `json:"pendingMasters,omitempty"`
	// Backup is where the original manifest is kept on the local master.
	Backup string `json:"backup"`
}

// tunnelStep carries the tunnel's preparation from the preflight to the
// change of the local master.
type tunnelStep struct {
	opts     TunnelOptions
	master   tunnel.Master
	local    tunnel.LocalAPIServer
	caCert   *x509.Certificate
	caKey    crypto.Signer
	masters  Masters
	kubeadm  *corev1.ConfigMap
	progress io.Writer
}

// prepareTunnel checks, from this host's files alone, that addon can
// configure the local master; it changes nothing. Every refusal names what
// would work instead and --tunnel=false.
func prepareTunnel(f *clusterfacts.Facts, o TunnelOptions) (*tunnelStep, error) {
	m := o.Master()
	p := m.Paths
	local, err := m.ReadLocalAPIServer()
	if err != nil {
		return nil, badInput(err)
	}
	if err := tunnel.CheckControlPlane(tunnel.ControlPlane{ServerVersion: f.ServerVersion, Kubeadm: f.Kubeadm, StaticPodManifest: local.Present}); err != nil {
		return nil, badInput(err)
	}
	if local.Endpoint == "" {
		return nil, badInput(fmt.Errorf("%s has no annotation %s, which kubeadm writes: edgeadm cannot tell which master this is; configure the egress selector by hand (docs/tunnel.md) or run addon with --tunnel=false",
			p.APIServerManifest(), kubeadmconstants.KubeAPIServerAdvertiseAddressEndpointAnnotationKey))
	}
	if err := m.Preflight(local.Manifest); err != nil {
		return nil, badInput(err)
	}
	// The manifests folder, and the folder the backup, egress file and
	// server kubeconfig folders are made in.
	for _, dir := range []string{p.ManifestDir, filepath.Dir(p.ManifestDir)} {
		if err := syscall.Access(filepath.Join(m.Root, dir), wOK); err != nil {
			return nil, badInput(fmt.Errorf("%s is not writable (%v): run addon as root on the master, or with --tunnel=false", dir, err))
		}
	}
	ca, key, err := m.CA()
	if err != nil {
		return nil, badInput(err)
	}
	if f.CA != nil && !ca.Equal(f.CA) {
		return nil, badInput(fmt.Errorf("%s/%s is not the CA of the cluster the kubeconfig points at: run addon on a master of that cluster, or with --tunnel=false",
			p.PKIDir, kubeadmconstants.CACertName))
	}
	return &tunnelStep{opts: o, master: m, local: local, caCert: ca, caKey: key}, nil
}

// wOK is access(2)'s W_OK.
const wOK = 0x2

// TunnelPermissions are what the tunnel step (and its undoing) needs
// beyond the objects.
func TunnelPermissions() []Permission {
	return []Permission{
		{Verb: "list", Resource: "pods", Namespace: metav1.NamespaceSystem},
		{Verb: "get", Resource: "pods", Namespace: metav1.NamespaceSystem},
		{Verb: "get", Resource: "configmaps", Namespace: metav1.NamespaceSystem, Name: kubeadmconstants.KubeadmConfigConfigMap},
		{Verb: "update", Resource: "configmaps", Namespace: metav1.NamespaceSystem, Name: kubeadmconstants.KubeadmConfigConfigMap},
		{Verb: "get", Resource: "nodes", Subresource: "proxy"},
		{Verb: "list", Group: "apiregistration.k8s.io", Resource: "apiservices"},
		{Verb: "list", Group: "admissionregistration.k8s.io", Resource: "validatingwebhookconfigurations"},
		{Verb: "list", Group: "admissionregistration.k8s.io", Resource: "mutatingwebhookconfigurations"},
		{Verb: "get", Resource: "services", Subresource: "proxy"},
	}
}

// checkCluster finds the masters and checks kubeadm-config can be
// patched, still changing nothing.
func (t *tunnelStep) checkCluster(ctx context.Context, client kubernetes.Interface) error {
	ms, err := FindMasters(ctx, client, t.local)
	if err != nil {
		return err
	}
	if ms.Local == nil {
		return badInput(fmt.Errorf("no kube-apiserver pod in kube-system advertises %s, the endpoint of this host's %s: this host is not a master of the cluster the kubeconfig points at; run addon on one of its masters, or with --tunnel=false",
			t.local.Endpoint, t.master.Paths.APIServerManifest()))
	}
	t.masters = ms
	cm, err := client.CoreV1().ConfigMaps(metav1.NamespaceSystem).Get(ctx, kubeadmconstants.KubeadmConfigConfigMap, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("read kube-system/%s: %w", kubeadmconstants.KubeadmConfigConfigMap, err)
	}
	doc, ok := cm.Data[kubeadmconstants.ClusterConfigurationConfigMapKey]
	if !ok {
		return badInput(fmt.Errorf("kube-system/%s has no %s: edgeadm cannot record the change for kubeadm upgrade; fix kubeadm-config, or run addon with --tunnel=false",
			kubeadmconstants.KubeadmConfigConfigMap, kubeadmconstants.ClusterConfigurationConfigMapKey))
	}
	if _, _, err := tunnel.PatchClusterConfiguration([]byte(doc), t.master.Paths); err != nil {
		return badInput(err)
	}
	t.kubeadm = cm
	return nil
}

// tunnelValues are the values of the server pod for this cluster.
func (t *tunnelStep) serverPod(plan *Plan, s Settings) ([]byte, error) {
	p := t.master.Paths
	v := tunnelValues(plan, s)
	v.ServerCount = len(t.masters.All)
	v.UDSDir, v.UDSName, v.PKIDir = p.UDSDir, p.UDSName(), p.PKIDir
	v.ServerKubeconfig = p.ServerKubeconfig
	return manifests.TunnelServerPod(v)
}

func tunnelValues(plan *Plan, s Settings) manifests.TunnelValues {
	return manifests.TunnelValues{
		Values: manifests.Values{ImageRepository: plan.Config.ImageRepository, EdgeVersion: plan.Config.EdgeVersion,
			MasterPublicAddr: plan.Config.MasterPublicAddr, APIServerPort: plan.Config.APIServerPort},
		KonnectivityImageRepository: s.KonnectivityImageRepository,
	}
}

// summary says what the step would do, without doing it (dry run).
func (t *tunnelStep) summary(note *TunnelNote) *TunnelSummary {
	s := &TunnelSummary{LocalMaster: t.masters.Local.Node, Backup: t.master.Paths.APIServerBackup()}
	for _, m := range t.masters.All {
		if m.Node != s.LocalMaster && (note == nil || !note.hasMaster(m.Node)) {
			s.PendingMasters = append(s.PendingMasters, m.Node)
		}
	}
	return s
}

// configure changes the local master, one step at a time, and rolls the
// API server back if it does not come back ready and reaching a kubelet
// through the tunnel.
func (t *tunnelStep) configure(ctx context.Context, client kubernetes.Interface, serverPod []byte) (*TunnelSummary, error) {
	say := func(format string, args ...any) { fmt.Fprintf(t.progress, "[tunnel] "+format+"\n", args...) }
	local := *t.masters.Local
	p := t.master.Paths
	now := time.Now
	if t.opts.Now != nil {
		now = t.opts.Now
	}
	// What answers before the change: only these may fail the check
	// after it (a webhook already down must not make addon roll back).
	before, err := t.opts.Waiter.Before(ctx, local)
	if err != nil {
		return nil, fmt.Errorf("before changing %s: %w; nothing was changed; run addon again once the API server answers", local.Node, err)
	}
	note, err := GetTunnelNote(ctx, client)
	if err != nil {
		return nil, err
	}
	if note == nil {
		note = &TunnelNote{}
	}
	// Noted before any file changes, so that an interrupted addon leaves
	// a master detach knows to restore.
	if !note.hasMaster(local.Node) {
		note.Masters = append(note.Masters, NoteMaster{Node: local.Node, Endpoint: local.Endpoint})
		if err := SaveTunnelNote(ctx, client, *note); err != nil {
			return nil, err
		}
	}
	sum := t.summary(note)

	var kubeconfig []byte
	if !t.master.ServerKubeconfigCurrent(t.caCert, now()) {
		if kubeconfig, err = tunnel.ServerKubeconfig(t.caCert, t.caKey, "https://"+local.Endpoint, now().Add(365*24*time.Hour)); err != nil {
			return nil, err
		}
	}
	configured, err := tunnel.IsConfigured(t.local.Manifest, p)
	if err != nil {
		return nil, err
	}
	if _, err := t.master.WriteServer(kubeconfig, serverPod); err != nil {
		return nil, err
	}
	say("proxy server static pod %s written on %s; waiting until an agent is connected", p.ServerManifest(), local.Node)
	start := time.Now()
	if err := t.opts.Waiter.ProxyServerReady(ctx, local); err != nil {
		if !configured {
			// The API server does not use it: leave nothing of the tunnel
			// on this master.
			_, rerr := t.master.RemoveServer()
			*note = note.WithoutMaster(local.Node)
			return nil, errors.Join(fmt.Errorf("%w; the API server of %s was not changed and the proxy server pod was removed; check the konnectivity-agent-cloud pods in %s and the konnectivity-server container's log, then run addon again; to go without the tunnel, run \"edgeadm detach edge-apps\", then addon with --tunnel=false",
				err, local.Node, manifests.Namespace), rerr, SaveTunnelNote(ctx, client, *note))
		}
		return nil, err
	}
	say("proxy server on %s Ready (%s)", local.Node, round(time.Since(start)))

	changed, err := t.master.Configure()
	if err != nil {
		return nil, err
	}
	sum.APIServerChanged = changed
	if changed {
		say("kube-apiserver manifest of %s changed (original kept in %s); waiting for the API server", local.Node, p.APIServerBackup())
		start = time.Now()
		err := t.opts.Waiter.APIServerReady(ctx, local, true)
		if err == nil {
			say("API server of %s ready with the egress selector (%s)", local.Node, round(time.Since(start)))
			for _, n := range before.Notes {
				say("%s", n)
			}
			err = t.opts.Waiter.Verify(ctx, local, before)
		}
		if err != nil {
			return nil, t.rollBack(ctx, client, note, local, err)
		}
		say("through the tunnel on %s: node proxy, %d aggregated API(s) and %d webhook server(s) answer", local.Node, len(before.AggregatedAPIs), len(before.Webhooks))
	} else {
		say("kube-apiserver of %s already uses the tunnel: unchanged", local.Node)
	}

	cm := t.kubeadm.DeepCopy()
	doc := cm.Data[kubeadmconstants.ClusterConfigurationConfigMapKey]
	out, kchanged, err := tunnel.PatchClusterConfiguration([]byte(doc), p)
	if err != nil {
		return nil, err
	}
	if kchanged {
		if note.ClusterConfigurationBefore == "" {
			note.ClusterConfigurationBefore = doc
		}
		note.ClusterConfigurationAfter = string(out)
		if err := SaveTunnelNote(ctx, client, *note); err != nil {
			return nil, err
		}
		cm.Data[kubeadmconstants.ClusterConfigurationConfigMapKey] = string(out)
		if _, err := client.CoreV1().ConfigMaps(metav1.NamespaceSystem).Update(ctx, cm, metav1.UpdateOptions{FieldManager: TunnelFieldManager}); err != nil {
			if apierrors.IsConflict(err) {
				return nil, fmt.Errorf("kube-system/%s changed while addon ran: run addon again (this master is configured; only the record for kubeadm upgrade is missing)", kubeadmconstants.KubeadmConfigConfigMap)
			}
			return nil, fmt.Errorf("record the egress selector in kube-system/%s for kubeadm upgrade: %w: run addon again", kubeadmconstants.KubeadmConfigConfigMap, err)
		}
		sum.KubeadmConfigChanged = true
		say("kube-system/%s records the egress selector (apiServer.extraArgs, extraVolumes) so kubeadm upgrade keeps it", kubeadmconstants.KubeadmConfigConfigMap)
	}
	return sum, nil
}

// rollBack puts the original manifest back, waits for the API server, and
// removes the proxy server from this master.
func (t *tunnelStep) rollBack(ctx context.Context, client kubernetes.Interface, note *TunnelNote, local MasterInfo, cause error) error {
	fmt.Fprintf(t.progress, "[tunnel] FAILED on %s: %v; rolling back\n", local.Node, cause)
	if _, err := t.master.Restore(); err != nil {
		return fmt.Errorf("%v; rolling back failed too: %w: put %s back to %s by hand", cause, err, t.master.Paths.APIServerBackup(), t.master.Paths.APIServerManifest())
	}
	if err := t.opts.Waiter.APIServerReady(ctx, local, false); err != nil {
		return fmt.Errorf("%v; the original manifest is back, but the API server of %s is not ready yet: %w: check the kubelet's log on %s", cause, local.Node, err, local.Node)
	}
	_, rerr := t.master.RemoveServer()
	*note = note.WithoutMaster(local.Node)
	return errors.Join(fmt.Errorf("the API server of %s did not work with the tunnel (%v): rolled back, its manifest is the original again, byte for byte, and it is ready; fix the cause and run addon again; to go without the tunnel, run \"edgeadm detach edge-apps\", then addon with --tunnel=false",
		local.Node, cause), rerr, SaveTunnelNote(ctx, client, *note))
}
