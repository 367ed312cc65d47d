package phases

import (
	"context"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"sigs.k8s.io/yaml"

	"github.com/edgeadm/edgeadm/manifests"
)

func edgeDNSConfigMap(listen string) *corev1.ConfigMap {
	return &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: manifests.EdgeCoreDNSConfigMap, Namespace: manifests.Namespace},
		Data:       map[string]string{manifests.EdgeCoreDNSListenKey: listen},
	}
}

func TestEdgeCoreDNSListen(t *testing.T) {
	ctx := context.Background()
	if got, err := EdgeCoreDNSListen(ctx, fake.NewClientset()); err != nil || got != "" {
		t.Errorf("no ConfigMap: %q, %v; want edge coredns off", got, err)
	}
	if got, err := EdgeCoreDNSListen(ctx, fake.NewClientset(edgeDNSConfigMap("node-ip"))); err != nil || got != manifests.EdgeCoreDNSListenNode {
		t.Errorf("node-ip: %q, %v", got, err)
	}
	_, err := EdgeCoreDNSListen(ctx, fake.NewClientset(edgeDNSConfigMap("169.254.20.10")))
	if err == nil || !strings.Contains(err.Error(), `"169.254.20.10"`) || !strings.Contains(err.Error(), "edgeadm that ran addon") {
		t.Errorf("unknown listen: %v, want an error naming the value and the fix", err)
	}

	// A cluster without edge coredns's Role: the bootstrap token may not read it.
	forbidden := fake.NewClientset()
	forbidden.PrependReactor("get", "configmaps", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewForbidden(schema.GroupResource{Resource: "configmaps"}, manifests.EdgeCoreDNSConfigMap, nil)
	})
	if got, err := EdgeCoreDNSListen(ctx, forbidden); err != nil || got != "" {
		t.Errorf("forbidden: %q, %v; want edge coredns off", got, err)
	}
	broken := fake.NewClientset()
	broken.PrependReactor("get", "configmaps", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewServiceUnavailable("etcd down")
	})
	if _, err := EdgeCoreDNSListen(ctx, broken); err == nil {
		t.Error("an apiserver error must fail the join, not silently keep the cloud's DNS")
	}
}

func TestWithEdgeClusterDNS(t *testing.T) {
	out, err := WithEdgeClusterDNS([]byte("kind: KubeletConfiguration\nclusterDNS: [10.96.0.10]\nclusterDomain: cluster.local\n"), "192.0.2.7")
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := yaml.Unmarshal(out, &m); err != nil {
		t.Fatal(err)
	}
	dns, _ := m["clusterDNS"].([]any)
	if len(dns) != 1 || dns[0] != "192.0.2.7" || m["clusterDomain"] != "cluster.local" || m["kind"] != "KubeletConfiguration" {
		t.Errorf("got %s", out)
	}
}
