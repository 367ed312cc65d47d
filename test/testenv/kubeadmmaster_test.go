package testenv

import (
	"context"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kubeadmconstants "k8s.io/kubernetes/cmd/kubeadm/app/constants"
)

// TestKubeadmMasterRunsTheControlPlaneAsStaticPods: kubeadm init made the
// master: the four manifests, whose mirror pods are Ready on the master
// Node; kubeadm-config names the cluster; the API server is reconfigurable
// like a user's: a changed manifest is picked up by the kubelet, and the
// original put back brings it back.
func TestKubeadmMasterRunsTheControlPlaneAsStaticPods(t *testing.T) {
	c := NewKubeadmCluster(t, ControlPlaneOptions{ServiceCIDR: "10.112.0.0/16"})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	manifests, err := c.KubeadmManifests()
	if err != nil {
		t.Fatal(err)
	}
	for _, comp := range kubeadmMasterImages {
		if _, ok := manifests[comp+".yaml"]; !ok {
			t.Errorf("no %s.yaml in the master's manifests folder (has %d files)", comp, len(manifests))
		}
		if err := Poll(ctx, time.Second, func(ctx context.Context) (bool, error) { return MasterPodReady(ctx, c.Client, comp) }); err != nil {
			t.Errorf("the %s mirror pod is not Ready: %v", comp, err)
		}
	}
	cm, err := c.Client.CoreV1().ConfigMaps(metav1.NamespaceSystem).Get(ctx, kubeadmconstants.KubeadmConfigConfigMap, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if doc := cm.Data[kubeadmconstants.ClusterConfigurationConfigMapKey]; !strings.Contains(doc, "kubeadm.k8s.io/v1beta4") || !strings.Contains(doc, "10.112.0.0/16") {
		t.Errorf("kubeadm-config's ClusterConfiguration is not this cluster's v1beta4:\n%s", doc)
	}

	// Reconfigure the API server the way addon does: the kubelet restarts
	// it with the new manifest (a label shows which one runs).
	orig := manifests["kube-apiserver.yaml"]
	changed := strings.Replace(string(orig), "    component: kube-apiserver\n", "    component: kube-apiserver\n    e2e.edgeadm.io/reconfigured: \"yes\"\n", 1)
	if changed == string(orig) {
		t.Fatalf("the kube-apiserver manifest has no component label:\n%s", orig)
	}
	for _, step := range []struct {
		data []byte
		want string
	}{{[]byte(changed), "yes"}, {orig, ""}} {
		if err := c.Master.WriteFile("/etc/kubernetes/manifests/kube-apiserver.yaml", step.data, 0o600); err != nil {
			t.Fatal(err)
		}
		err := Poll(ctx, time.Second, func(ctx context.Context) (bool, error) {
			pod, err := c.Client.CoreV1().Pods(metav1.NamespaceSystem).Get(ctx, "kube-apiserver-"+KubeadmMasterName, metav1.GetOptions{})
			if err != nil || pod.Labels["e2e.edgeadm.io/reconfigured"] != step.want {
				return false, err
			}
			return MasterPodReady(ctx, c.Client, "kube-apiserver")
		})
		if err != nil {
			t.Fatalf("the API server did not come back Ready with the manifest labelled %q: %v", step.want, err)
		}
	}
}
