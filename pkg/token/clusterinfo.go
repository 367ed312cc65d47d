package token

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	bootstrapapi "k8s.io/cluster-bootstrap/token/api"
	"k8s.io/cluster-bootstrap/token/jws"
	"k8s.io/klog/v2"
	"sigs.k8s.io/yaml"

	"github.com/edgeadm/edgeadm/pkg/state"
)

const (
	// RecordKeyPrefix starts the keys of the edgeadm record (kube-system/edgeadm)
	// that note a signature edgeadm put into cluster-info itself: key
	// RecordKeyPrefix+"jws-kubeconfig-<id>", value the signature added.
	RecordKeyPrefix = "cluster-info."
	// FieldManager is the manager of the record keys token writes. It is not
	// addon's ("edgeadm"), so addon's server-side apply of the record never
	// takes these keys away.
	FieldManager = "edgeadm-token"
)

// ErrNoClusterInfo means kube-public/cluster-info is missing or empty.
var ErrNoClusterInfo = errors.New("kube-public/cluster-info does not exist or holds no kubeconfig, " +
	"so edge nodes cannot discover the cluster: run edgeadm addon edge-apps first")

func signatureKey(id string) string { return bootstrapapi.JWSSignatureKeyPrefix + id }
func recordKey(id string) string    { return RecordKeyPrefix + signatureKey(id) }

// getClusterInfo returns kube-public/cluster-info, or ErrNoClusterInfo.
func getClusterInfo(ctx context.Context, client kubernetes.Interface) (*corev1.ConfigMap, error) {
	cm, err := client.CoreV1().ConfigMaps(metav1.NamespacePublic).Get(ctx, bootstrapapi.ConfigMapClusterInfo, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, ErrNoClusterInfo
	}
	if err != nil {
		return nil, fmt.Errorf("read kube-public/cluster-info: %w", err)
	}
	if cm.Data[bootstrapapi.KubeConfigKey] == "" {
		return nil, ErrNoClusterInfo
	}
	return cm, nil
}

// waitForSignature watches cluster-info until it carries a signature for id
// or bound passes. It reports whether one appeared.
func waitForSignature(ctx context.Context, client kubernetes.Interface, id string, bound time.Duration) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, bound)
	defer cancel()
	cms := client.CoreV1().ConfigMaps(metav1.NamespacePublic)
	sel := fields.OneTermEqualSelector("metadata.name", bootstrapapi.ConfigMapClusterInfo).String()
	for {
		cm, err := cms.Get(ctx, bootstrapapi.ConfigMapClusterInfo, metav1.GetOptions{})
		switch {
		case ctx.Err() != nil:
			return false, nil
		case apierrors.IsNotFound(err):
			return false, ErrNoClusterInfo
		case err != nil:
			return false, fmt.Errorf("read kube-public/cluster-info: %w", err)
		case cm.Data[signatureKey(id)] != "":
			return true, nil
		}
		w, err := cms.Watch(ctx, metav1.ListOptions{FieldSelector: sel, ResourceVersion: cm.ResourceVersion})
		if ctx.Err() != nil {
			return false, nil
		}
		if err != nil {
			return false, fmt.Errorf("watch kube-public/cluster-info for the signature of token %q: %w", id, err)
		}
		found, err := watchForSignature(ctx, w, id)
		w.Stop()
		if found || err != nil || ctx.Err() != nil {
			return found, err
		}
		// The watch ended early (expired resourceVersion, apiserver restart): read again.
	}
}

func watchForSignature(ctx context.Context, w watch.Interface, id string) (bool, error) {
	for {
		select {
		case <-ctx.Done():
			return false, nil
		case ev, ok := <-w.ResultChan():
			if !ok {
				return false, nil
			}
			switch ev.Type {
			case watch.Deleted:
				return false, ErrNoClusterInfo
			case watch.Error:
				klog.V(1).Infof("[token] watch of cluster-info ended: %v", apierrors.FromObject(ev.Object))
				return false, nil
			}
			if cm, ok := ev.Object.(*corev1.ConfigMap); ok && cm.Name == bootstrapapi.ConfigMapClusterInfo && cm.Data[signatureKey(id)] != "" {
				return true, nil
			}
		}
	}
}

// sign adds t's signature of cluster-info's kubeconfig, in kubeadm's JWS
// format. The note in the edgeadm record is written first, so that no
// signature edgeadm added is ever unaccounted for. The patch carries a test
// on the kubeconfig it signed: if cluster-info changed meanwhile, nothing is
// added. It returns the signature.
func sign(ctx context.Context, client kubernetes.Interface, cm *corev1.ConfigMap, t Token) (string, error) {
	kubeconfig := cm.Data[bootstrapapi.KubeConfigKey]
	sig, err := jws.ComputeDetachedSignature(kubeconfig, t.ID(), t.secretPart())
	if err != nil {
		return "", fmt.Errorf("sign cluster-info for token %q: %w", t.ID(), err)
	}
	if err := noteSignature(ctx, client, t.ID(), sig); err != nil {
		return "", err
	}
	patch, err := json.Marshal([]map[string]any{
		{"op": "test", "path": "/data/" + bootstrapapi.KubeConfigKey, "value": kubeconfig},
		{"op": "add", "path": "/data/" + signatureKey(t.ID()), "value": sig},
	})
	if err != nil {
		return "", err
	}
	_, err = client.CoreV1().ConfigMaps(metav1.NamespacePublic).Patch(ctx, bootstrapapi.ConfigMapClusterInfo,
		types.JSONPatchType, patch, metav1.PatchOptions{FieldManager: FieldManager})
	if err != nil {
		_ = forgetSignature(ctx, client, t.ID())
		return "", fmt.Errorf("add the signature for token %q to kube-public/cluster-info (it may have changed meanwhile; run the command again): %w", t.ID(), err)
	}
	klog.V(1).Infof("[token] signed kube-public/cluster-info for token %q", t.ID())
	return sig, nil
}

// noteSignature records in kube-system/edgeadm that edgeadm added sig.
func noteSignature(ctx context.Context, client kubernetes.Interface, id, sig string) error {
	cms := client.CoreV1().ConfigMaps(state.Namespace)
	patch, err := json.Marshal(map[string]any{"data": map[string]any{recordKey(id): sig}})
	if err != nil {
		return err
	}
	opts := metav1.PatchOptions{FieldManager: FieldManager}
	_, err = cms.Patch(ctx, state.Name, types.MergePatchType, patch, opts)
	if apierrors.IsNotFound(err) {
		_, err = cms.Create(ctx, &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{
				Name: state.Name, Namespace: state.Namespace,
				Labels: map[string]string{"app.kubernetes.io/managed-by": "edgeadm"},
			},
			Data: map[string]string{recordKey(id): sig},
		}, metav1.CreateOptions{FieldManager: FieldManager})
		if apierrors.IsAlreadyExists(err) {
			_, err = cms.Patch(ctx, state.Name, types.MergePatchType, patch, opts)
		}
	}
	if err != nil {
		return fmt.Errorf("note the cluster-info signature for token %q in %s/%s: %w", id, state.Namespace, state.Name, err)
	}
	return nil
}

// forgetSignature drops the note for id from the record.
func forgetSignature(ctx context.Context, client kubernetes.Interface, id string) error {
	patch, err := json.Marshal(map[string]any{"data": map[string]any{recordKey(id): nil}})
	if err != nil {
		return err
	}
	_, err = client.CoreV1().ConfigMaps(state.Namespace).Patch(ctx, state.Name, types.MergePatchType, patch,
		metav1.PatchOptions{FieldManager: FieldManager})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("drop the note of the cluster-info signature for token %q from %s/%s: %w", id, state.Namespace, state.Name, err)
	}
	return nil
}

// record is what token reads from kube-system/edgeadm.
type record struct {
	config state.Config
	// signed maps token ID to the signature edgeadm added to cluster-info.
	signed map[string]string
}

func readRecord(ctx context.Context, client kubernetes.Interface) (*record, error) {
	r := &record{signed: map[string]string{}}
	cm, err := client.CoreV1().ConfigMaps(state.Namespace).Get(ctx, state.Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return r, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read the edgeadm record %s/%s: %w", state.Namespace, state.Name, err)
	}
	if s := cm.Data[state.ConfigKey]; s != "" {
		if err := yaml.Unmarshal([]byte(s), &r.config); err != nil {
			return nil, fmt.Errorf("the edgeadm record %s/%s has a bad %s: %w", state.Namespace, state.Name, state.ConfigKey, err)
		}
	}
	for k, v := range cm.Data {
		if id, ok := strings.CutPrefix(k, RecordKeyPrefix+bootstrapapi.JWSSignatureKeyPrefix); ok {
			r.signed[id] = v
		}
	}
	return r, nil
}

// unsignOutcome says what removeSignature found.
type unsignOutcome int

const (
	unsignRemoved unsignOutcome = iota // edgeadm's signature was removed
	unsignGone                         // there was none any more
	unsignChanged                      // the key holds another value now: left alone
)

// removeSignature takes the signature edgeadm added for id out of
// cluster-info, only if it still holds the value edgeadm added (a JSON patch
// test), and then drops the note.
func removeSignature(ctx context.Context, client kubernetes.Interface, id, sig string) (unsignOutcome, error) {
	path := "/data/" + signatureKey(id)
	patch, err := json.Marshal([]map[string]any{
		{"op": "test", "path": path, "value": sig},
		{"op": "remove", "path": path},
	})
	if err != nil {
		return 0, err
	}
	cms := client.CoreV1().ConfigMaps(metav1.NamespacePublic)
	_, err = cms.Patch(ctx, bootstrapapi.ConfigMapClusterInfo, types.JSONPatchType, patch, metav1.PatchOptions{FieldManager: FieldManager})
	outcome := unsignRemoved
	if err != nil {
		// The test failed, or cluster-info is gone: look at what is there.
		cm, getErr := cms.Get(ctx, bootstrapapi.ConfigMapClusterInfo, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(getErr):
			outcome = unsignGone
		case getErr != nil:
			return 0, fmt.Errorf("remove the signature for token %q from kube-public/cluster-info: %w", id, err)
		case cm.Data[signatureKey(id)] == "":
			outcome = unsignGone
		case cm.Data[signatureKey(id)] != sig:
			outcome = unsignChanged
		default:
			return 0, fmt.Errorf("remove the signature for token %q from kube-public/cluster-info: %w", id, err)
		}
	}
	if err := forgetSignature(ctx, client, id); err != nil {
		return outcome, err
	}
	return outcome, nil
}
