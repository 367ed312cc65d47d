package state

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/yaml"
)

const (
	// FieldManager is the server-side apply field manager of every write
	// edgeadm makes.
	FieldManager = "edgeadm"
	// ManagedByLabel marks every object edgeadm creates, with ManagedByValue.
	ManagedByLabel = "app.kubernetes.io/managed-by"
	ManagedByValue = "edgeadm"
)

// Record is the content of kube-system/edgeadm.
type Record struct {
	Config    Config
	Ownership Ownership

	// UID and ResourceVersion of the ConfigMap as read; empty for a record
	// that is not in the cluster yet.
	UID             types.UID
	ResourceVersion string
	// data as read, to tell whether a write would change anything.
	data map[string]string
}

// Get reads the record. It returns (nil, nil) when there is none.
func Get(ctx context.Context, client kubernetes.Interface) (*Record, error) {
	cm, err := client.CoreV1().ConfigMaps(Namespace).Get(ctx, Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read the edgeadm record %s/%s: %w", Namespace, Name, err)
	}
	return FromConfigMap(cm)
}

// FromConfigMap decodes a record ConfigMap.
func FromConfigMap(cm *corev1.ConfigMap) (*Record, error) {
	r := &Record{UID: cm.UID, ResourceVersion: cm.ResourceVersion, data: cm.Data}
	if s, ok := cm.Data[ConfigKey]; ok {
		if err := yaml.UnmarshalStrict([]byte(s), &r.Config); err != nil {
			return nil, fmt.Errorf("the edgeadm record %s/%s has a bad %s: %w: fix or delete it", Namespace, Name, ConfigKey, err)
		}
	}
	if s, ok := cm.Data[OwnershipKey]; ok {
		if err := yaml.UnmarshalStrict([]byte(s), &r.Ownership); err != nil {
			return nil, fmt.Errorf("the edgeadm record %s/%s has a bad %s: %w: fix it by hand; detach cannot know what to delete", Namespace, Name, OwnershipKey, err)
		}
	}
	return r, nil
}

// Data returns the ConfigMap data for r. It is deterministic: the same
// record always gives the same bytes.
func (r *Record) Data() (map[string]string, error) {
	c, err := yaml.Marshal(r.Config)
	if err != nil {
		return nil, err
	}
	o, err := yaml.Marshal(r.Ownership)
	if err != nil {
		return nil, err
	}
	return map[string]string{ConfigKey: string(c), OwnershipKey: string(o)}, nil
}

// ConfigMap returns r as the ConfigMap to apply (what dry-run prints).
func (r *Record) ConfigMap() (*corev1.ConfigMap, error) {
	data, err := r.Data()
	if err != nil {
		return nil, err
	}
	return &corev1.ConfigMap{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
		ObjectMeta: metav1.ObjectMeta{
			Name: Name, Namespace: Namespace,
			Labels: map[string]string{ManagedByLabel: ManagedByValue},
		},
		Data: data,
	}, nil
}

// Unchanged reports whether writing r would leave the stored record as it
// is. Only the keys edgeadm addon owns count: other commands (token) may
// keep notes of their own under other keys of the same ConfigMap.
func (r *Record) Unchanged() bool {
	if r.data == nil {
		return false
	}
	data, err := r.Data()
	if err != nil {
		return false
	}
	for k, v := range data {
		stored, ok := r.data[k]
		if !ok || stored != v {
			return false
		}
	}
	return true
}

// Save writes r with server-side apply, unless the stored record already
// holds exactly this content, in which case it sends nothing (so an
// unchanged record keeps its resourceVersion).
func Save(ctx context.Context, client kubernetes.Interface, r *Record) error {
	if r.Unchanged() {
		return nil
	}
	data, err := r.Data()
	if err != nil {
		return err
	}
	ac := corev1ac.ConfigMap(Name, Namespace).
		WithLabels(map[string]string{ManagedByLabel: ManagedByValue}).
		WithData(data)
	cm, err := client.CoreV1().ConfigMaps(Namespace).Apply(ctx, ac, metav1.ApplyOptions{FieldManager: FieldManager})
	if err != nil {
		return fmt.Errorf("write the edgeadm record %s/%s: %w", Namespace, Name, err)
	}
	r.UID, r.ResourceVersion, r.data = cm.UID, cm.ResourceVersion, cm.Data
	return nil
}

// Delete removes the record, if it is still the one read (uid precondition).
func Delete(ctx context.Context, client kubernetes.Interface, r *Record) error {
	opts := metav1.DeleteOptions{}
	if r.UID != "" {
		opts.Preconditions = &metav1.Preconditions{UID: &r.UID}
	}
	err := client.CoreV1().ConfigMaps(Namespace).Delete(ctx, Name, opts)
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("delete the edgeadm record %s/%s: %w", Namespace, Name, err)
	}
	return nil
}

// SetStored makes r remember the content of s, a copy of r that Save just
// wrote, so that a later Save of the same content is skipped.
func (r *Record) SetStored(s Record) { r.data = s.data }

// HasAddon reports whether the stored record holds addon's keys (other
// commands may have made the ConfigMap for notes of their own).
func (r *Record) HasAddon() bool {
	_, c := r.data[ConfigKey]
	_, o := r.data[OwnershipKey]
	return c || o
}

// Forget removes addon's part of the record: the whole ConfigMap when it
// holds nothing else, otherwise only addon's keys, so that notes other
// commands keep there (token's cluster-info signatures) survive.
func Forget(ctx context.Context, client kubernetes.Interface, r *Record) error {
	others := false
	for k := range r.data {
		if k != ConfigKey && k != OwnershipKey {
			others = true
		}
	}
	if !others {
		return Delete(ctx, client, r)
	}
	patch := []byte(`{"data":{"` + ConfigKey + `":null,"` + OwnershipKey + `":null}}`)
	_, err := client.CoreV1().ConfigMaps(Namespace).Patch(ctx, Name, types.MergePatchType, patch, metav1.PatchOptions{FieldManager: FieldManager})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("remove addon's keys from the edgeadm record %s/%s: %w", Namespace, Name, err)
	}
	return nil
}
