package detach

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	kubeadmconstants "k8s.io/kubernetes/cmd/kubeadm/app/constants"

	"github.com/edgeadm/edgeadm/pkg/addon"
	"github.com/edgeadm/edgeadm/pkg/tunnel"
)

// ErrTunnelMasters is returned while other masters' API servers still
// send their traffic through the tunnel: removing the proxy servers' agents
// would cut their kubectl logs/exec, webhooks and aggregated APIs.
var ErrTunnelMasters = errors.New("other masters still use the tunnel")

// TunnelResult is what detach did to the tunnel's changes outside the API
// objects.
type TunnelResult struct {
	// LocalMaster is the master detach ran on, when it was configured.
	LocalMaster string `json:"localMaster,omitempty"`
	// Restored: its kube-apiserver manifest was put back, byte for byte.
	Restored bool `json:"restored"`
	// KubeadmConfig is "restored", "unpatched" (changed since addon: only
	// the tunnel's entries were removed) or "unchanged".
	KubeadmConfig string `json:"kubeadmConfig,omitempty"`
	// PendingMasters still carry the change: detach must run on each.
	PendingMasters []string `json:"pendingMasters,omitempty"`
}

// undoTunnel restores this host's API server if addon configured it, and,
// when no other master uses the tunnel any more, kubeadm-config and the
// note. It refuses, changing nothing, when run away from the masters while
// some still use the tunnel.
func undoTunnel(ctx context.Context, client kubernetes.Interface, o addon.TunnelOptions, note *addon.TunnelNote, dry bool, progress io.Writer) (*TunnelResult, error) {
	say := func(format string, args ...any) { fmt.Fprintf(progress, "[tunnel] "+format+"\n", args...) }
	m := o.Master()
	local, err := m.ReadLocalAPIServer()
	if err != nil {
		return nil, err
	}
	ms, err := addon.FindMasters(ctx, client, local)
	if err != nil {
		return nil, err
	}
	alive := map[string]bool{}
	for _, x := range ms.All {
		alive[x.Node] = true
	}
	res := &TunnelResult{}
	var localInfo *addon.MasterInfo
	for _, nm := range note.Masters {
		switch {
		case local.Present && local.Endpoint != "" && nm.Endpoint == local.Endpoint:
			info := addon.MasterInfo{Node: nm.Node, Endpoint: nm.Endpoint, APIServerPod: "kube-apiserver-" + strings.ToLower(nm.Node)}
			if ms.Local != nil {
				info = *ms.Local
			}
			localInfo = &info
			res.LocalMaster = nm.Node
		case alive[nm.Node]:
			res.PendingMasters = append(res.PendingMasters, nm.Node)
		default:
			say("WARNING: master %s is noted as using the tunnel but runs no kube-apiserver pod any more: skipped", nm.Node)
		}
	}
	if localInfo == nil && len(res.PendingMasters) > 0 {
		return res, fmt.Errorf("%w: the API servers of %s send their traffic through the tunnel: run \"edgeadm detach edge-apps\" as root on each of them first (each restores its own kube-apiserver manifest; the last one removes the tunnel and edge-apps); nothing was changed",
			ErrTunnelMasters, strings.Join(res.PendingMasters, ", "))
	}
	if dry {
		if localInfo != nil {
			say("would restore %s of %s from %s and remove the proxy server pod", m.Paths.APIServerManifest(), localInfo.Node, m.Paths.APIServerBackup())
		}
		if len(res.PendingMasters) == 0 {
			say("would restore kube-system/%s's ClusterConfiguration", kubeadmconstants.KubeadmConfigConfigMap)
		}
		return res, nil
	}
	if localInfo != nil {
		changed, err := m.Restore()
		if err != nil {
			return res, err
		}
		if changed {
			say("%s of %s restored from its backup; waiting for the API server", m.Paths.APIServerManifest(), localInfo.Node)
			if err := o.Waiter.APIServerReady(ctx, *localInfo, false); err != nil {
				return res, fmt.Errorf("the original kube-apiserver manifest of %s is back, but: %w: check the kubelet's log there, then run detach again", localInfo.Node, err)
			}
		}
		res.Restored = changed
		if _, err := m.RemoveServer(); err != nil {
			return res, err
		}
		rest := note.WithoutMaster(localInfo.Node)
		*note = rest
		if err := addon.SaveTunnelNote(ctx, client, *note); err != nil {
			return res, err
		}
		say("the API server of %s no longer uses the tunnel; its proxy server pod is removed", localInfo.Node)
	}
	if len(res.PendingMasters) > 0 {
		return res, fmt.Errorf("%w: this master (%s) is restored, but the API servers of %s still send their traffic through the tunnel: run \"edgeadm detach edge-apps\" as root on each of them; the last one removes the tunnel and edge-apps",
			ErrTunnelMasters, res.LocalMaster, strings.Join(res.PendingMasters, ", "))
	}
	if res.KubeadmConfig, err = restoreKubeadmConfig(ctx, client, note, m.Paths); err != nil {
		return res, err
	}
	say("kube-system/%s: %s", kubeadmconstants.KubeadmConfigConfigMap, res.KubeadmConfig)
	return res, addon.RemoveTunnelNote(ctx, client)
}

// restoreKubeadmConfig puts back the ClusterConfiguration addon found when
// the document is still the one addon left; when it changed since (kubeadm
// upgrade rewrote it), it removes only the tunnel's entries.
func restoreKubeadmConfig(ctx context.Context, client kubernetes.Interface, note *addon.TunnelNote, p tunnel.Paths) (string, error) {
	cms := client.CoreV1().ConfigMaps(metav1.NamespaceSystem)
	cm, err := cms.Get(ctx, kubeadmconstants.KubeadmConfigConfigMap, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return "unchanged (it is gone)", nil
	}
	if err != nil {
		return "", fmt.Errorf("read kube-system/%s: %w", kubeadmconstants.KubeadmConfigConfigMap, err)
	}
	doc, ok := cm.Data[kubeadmconstants.ClusterConfigurationConfigMapKey]
	if !ok {
		return "unchanged (no ClusterConfiguration)", nil
	}
	var out, done string
	switch {
	case note.ClusterConfigurationAfter != "" && doc == note.ClusterConfigurationAfter:
		out, done = note.ClusterConfigurationBefore, "restored"
	default:
		b, changed, err := tunnel.UnpatchClusterConfiguration([]byte(doc), p)
		if err != nil {
			return "", fmt.Errorf("%w: remove the %s flag and the %s and %s volumes from its apiServer by hand", err, tunnel.EgressFlag, tunnel.EgressConfigVolume, tunnel.UDSVolume)
		}
		if !changed {
			return "unchanged", nil
		}
		out, done = string(b), "unpatched (it changed since addon: only the tunnel's entries were removed)"
	}
	cm.Data[kubeadmconstants.ClusterConfigurationConfigMapKey] = out
	if _, err := cms.Update(ctx, cm, metav1.UpdateOptions{FieldManager: addon.TunnelFieldManager}); err != nil {
		return "", fmt.Errorf("restore kube-system/%s: %w: run detach again", kubeadmconstants.KubeadmConfigConfigMap, err)
	}
	return done, nil
}
