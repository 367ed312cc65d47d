package addon

import (
	"context"
	"encoding/json"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/yaml"

	"github.com/edgeadm/edgeadm/pkg/state"
)

// TunnelNoteKey is the key of kube-system/edgeadm where addon notes what
// the tunnel changed outside the API objects it records: which masters'
// API servers it configured, and kubeadm-config's ClusterConfiguration
// before and after its patch. detach reads it to undo exactly that.
const TunnelNoteKey = "tunnel.yaml"

// TunnelFieldManager writes the note, apart from the record's own keys
// (field manager "edgeadm", server-side apply), so that addon's apply of
// the record does not drop it.
const TunnelFieldManager = "edgeadm-tunnel"

// TunnelNote is the content of TunnelNoteKey. It holds no secret.
type TunnelNote struct {
	// Masters whose API server addon configured, or was about to (an
	// interrupted addon leaves them here so that detach restores them).
	Masters []NoteMaster `json:"masters,omitempty"`
	// ClusterConfigurationBefore and After are kubeadm-config's
	// ClusterConfiguration as addon found and left it; empty when addon did
	// not change it. detach puts Before back when the document is still
	// After, and removes only the tunnel's entries when it changed since.
	ClusterConfigurationBefore string `json:"clusterConfigurationBefore,omitempty"`
	ClusterConfigurationAfter  string `json:"clusterConfigurationAfter,omitempty"`
}

// NoteMaster is one configured master.
type NoteMaster struct {
	Node     string `json:"node"`
	Endpoint string `json:"endpoint"`
}

func (n *TunnelNote) hasMaster(node string) bool {
	for _, m := range n.Masters {
		if m.Node == node {
			return true
		}
	}
	return false
}

// WithoutMaster returns the note without node.
func (n TunnelNote) WithoutMaster(node string) TunnelNote {
	var kept []NoteMaster
	for _, m := range n.Masters {
		if m.Node != node {
			kept = append(kept, m)
		}
	}
	n.Masters = kept
	return n
}

// GetTunnelNote reads the note; nil when there is none.
func GetTunnelNote(ctx context.Context, client kubernetes.Interface) (*TunnelNote, error) {
	cm, err := client.CoreV1().ConfigMaps(state.Namespace).Get(ctx, state.Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read the edgeadm record %s/%s: %w", state.Namespace, state.Name, err)
	}
	s, ok := cm.Data[TunnelNoteKey]
	if !ok {
		return nil, nil
	}
	n := &TunnelNote{}
	if err := yaml.UnmarshalStrict([]byte(s), n); err != nil {
		return nil, fmt.Errorf("the edgeadm record %s/%s has a bad %s (%v): fix it by hand; it says which masters carry the tunnel's API server change", state.Namespace, state.Name, TunnelNoteKey, err)
	}
	return n, nil
}

// SaveTunnelNote writes n into the record (which addon made before).
func SaveTunnelNote(ctx context.Context, client kubernetes.Interface, n TunnelNote) error {
	b, err := yaml.Marshal(n)
	if err != nil {
		return err
	}
	return patchNote(ctx, client, string(b))
}

// RemoveTunnelNote removes the note from the record.
func RemoveTunnelNote(ctx context.Context, client kubernetes.Interface) error {
	err := patchNote(ctx, client, nil)
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}

func patchNote(ctx context.Context, client kubernetes.Interface, value any) error {
	patch, err := json.Marshal(map[string]any{"data": map[string]any{TunnelNoteKey: value}})
	if err != nil {
		return err
	}
	_, err = client.CoreV1().ConfigMaps(state.Namespace).Patch(ctx, state.Name, types.MergePatchType, patch,
		metav1.PatchOptions{FieldManager: TunnelFieldManager})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("write the tunnel's note in %s/%s: %w", state.Namespace, state.Name, err)
	}
	return err
}
