package joinprep

import (
	"context"
	"reflect"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/clientcmd"
	bootstrapapi "k8s.io/cluster-bootstrap/token/api"
	kubeletconfig "k8s.io/kubelet/config/v1beta1"
	"k8s.io/kubernetes/cmd/kubeadm/app/componentconfigs"
	"k8s.io/kubernetes/cmd/kubeadm/app/phases/bootstraptoken/clusterinfo"
	"k8s.io/kubernetes/cmd/kubeadm/app/phases/bootstraptoken/node"
	configutil "k8s.io/kubernetes/cmd/kubeadm/app/util/config"

	"github.com/edgeadm/edgeadm/pkg/clusterfacts"
	"github.com/edgeadm/edgeadm/pkg/state"
)

func facts() *clusterfacts.Facts {
	return &clusterfacts.Facts{
		ServerVersion: "v1.37.1", SecurePort: 7443,
		CAPEM:       []byte("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"),
		ServiceCIDR: "10.100.0.0/16", ClusterDNS: "10.100.0.53", DNSDomain: "corp.example",
		CertDNSNames: []string{"kubernetes", "kubernetes.default"},
	}
}

// kubeadmRBAC runs kubeadm's own bootstrap RBAC phases against a fake
// clientset and returns what they made.
func kubeadmRBAC(t *testing.T) map[string]runtime.Object {
	t.Helper()
	c := fake.NewClientset()
	for _, phase := range []func() error{
		func() error { return node.AllowBootstrapTokensToPostCSRs(c) },
		func() error { return node.AllowBootstrapTokensToGetNodes(c) },
		func() error { return node.AutoApproveNodeBootstrapTokens(c) },
		func() error { return node.AutoApproveNodeCertificateRotation(c) },
		func() error { return clusterinfo.CreateClusterInfoRBACRules(c) },
	} {
		if err := phase(); err != nil {
			t.Fatal(err)
		}
	}
	out := map[string]runtime.Object{}
	ctx := context.Background()
	crs, _ := c.RbacV1().ClusterRoles().List(ctx, metav1.ListOptions{})
	for i := range crs.Items {
		out["ClusterRole/"+crs.Items[i].Name] = &crs.Items[i]
	}
	crbs, _ := c.RbacV1().ClusterRoleBindings().List(ctx, metav1.ListOptions{})
	for i := range crbs.Items {
		out["ClusterRoleBinding/"+crbs.Items[i].Name] = &crbs.Items[i]
	}
	rs, _ := c.RbacV1().Roles("").List(ctx, metav1.ListOptions{})
	for i := range rs.Items {
		out["Role/"+rs.Items[i].Namespace+"/"+rs.Items[i].Name] = &rs.Items[i]
	}
	rbs, _ := c.RbacV1().RoleBindings("").List(ctx, metav1.ListOptions{})
	for i := range rbs.Items {
		out["RoleBinding/"+rbs.Items[i].Namespace+"/"+rbs.Items[i].Name] = &rbs.Items[i]
	}
	return out
}

func key(u *unstructured.Unstructured) string {
	if u.GetNamespace() != "" {
		return u.GetKind() + "/" + u.GetNamespace() + "/" + u.GetName()
	}
	return u.GetKind() + "/" + u.GetName()
}

func TestRBACIsKubeadms(t *testing.T) {
	r, err := Objects(facts(), "203.0.113.10")
	if err != nil {
		t.Fatal(err)
	}
	ours := map[string]*unstructured.Unstructured{}
	for _, o := range r.Objects {
		ours[key(o)] = o
		if o.GetLabels()[state.ManagedByLabel] != state.ManagedByValue {
			t.Errorf("%s lacks the managed-by label", key(o))
		}
	}
	for k, want := range kubeadmRBAC(t) {
		u, ok := ours[k]
		if !ok {
			t.Errorf("kubeadm makes %s; joinprep does not", k)
			continue
		}
		got := reflect.New(reflect.TypeOf(want).Elem()).Interface()
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, got); err != nil {
			t.Fatal(err)
		}
		switch w := want.(type) {
		case *rbacv1.ClusterRole:
			if !reflect.DeepEqual(got.(*rbacv1.ClusterRole).Rules, w.Rules) {
				t.Errorf("%s rules differ from kubeadm's: %+v vs %+v", k, got.(*rbacv1.ClusterRole).Rules, w.Rules)
			}
		case *rbacv1.Role:
			if !reflect.DeepEqual(got.(*rbacv1.Role).Rules, w.Rules) {
				t.Errorf("%s rules differ from kubeadm's", k)
			}
		case *rbacv1.ClusterRoleBinding:
			g := got.(*rbacv1.ClusterRoleBinding)
			if !reflect.DeepEqual(g.RoleRef, w.RoleRef) || !reflect.DeepEqual(g.Subjects, w.Subjects) {
				t.Errorf("%s differs from kubeadm's: %+v vs %+v", k, g, w)
			}
		case *rbacv1.RoleBinding:
			g := got.(*rbacv1.RoleBinding)
			if !reflect.DeepEqual(g.RoleRef, w.RoleRef) || !reflect.DeepEqual(g.Subjects, w.Subjects) {
				t.Errorf("%s differs from kubeadm's", k)
			}
		}
	}
	for k := range ours {
		if strings.HasPrefix(k, "ClusterRole/system:") {
			t.Errorf("joinprep would write the built-in %s", k)
		}
	}
}

func TestClusterInfoNamesACertName(t *testing.T) {
	f := facts()
	r, err := Objects(f, "203.0.113.10")
	if err != nil {
		t.Fatal(err)
	}
	var ci *unstructured.Unstructured
	for _, o := range r.Objects {
		if o.GetName() == bootstrapapi.ConfigMapClusterInfo {
			ci = o
		}
	}
	kc, _, _ := unstructured.NestedString(ci.Object, "data", bootstrapapi.KubeConfigKey)
	cfg, err := clientcmd.Load([]byte(kc))
	if err != nil {
		t.Fatal(err)
	}
	if c := cfg.Clusters[""]; c == nil || c.Server != "https://kubernetes.default:7443" || string(c.CertificateAuthorityData) != string(f.CAPEM) {
		t.Fatalf("cluster-info cluster = %+v", cfg.Clusters)
	}
	if len(r.Notes) != 0 {
		t.Errorf("notes = %q", r.Notes)
	}

	f.CertDNSNames = []string{"api.example.com"}
	if server, note := ClusterInfoServer(f, "api.example.com"); server != "https://api.example.com:7443" || note == "" {
		t.Errorf("without kubernetes.default: %q, %q", server, note)
	}
	if _, note := ClusterInfoServer(f, "203.0.113.10"); !strings.Contains(note, "only through a domain") {
		t.Errorf("no usable name: note %q", note)
	}
}

// TestKubeadmReadsOurConfig feeds the ConfigMaps to kubeadm's own loader,
// the one "kubeadm join" uses on a worker.
func TestKubeadmReadsOurConfig(t *testing.T) {
	kubeadmCM, kubeletCM, err := configMaps(facts())
	if err != nil {
		t.Fatal(err)
	}
	c := fake.NewClientset(kubeadmCM, kubeletCM)
	cfg, err := configutil.FetchInitConfigurationFromCluster(c, nil, "test", false, false, true, true)
	if err != nil {
		t.Fatalf("kubeadm cannot read the configuration: %v", err)
	}
	if cfg.Networking.ServiceSubnet != "10.100.0.0/16" || cfg.Networking.DNSDomain != "corp.example" || cfg.KubernetesVersion != "v1.37.1" {
		t.Errorf("networking = %+v, version %s", cfg.Networking, cfg.KubernetesVersion)
	}
	kc := cfg.ComponentConfigs[componentconfigs.KubeletGroup].Get().(*kubeletconfig.KubeletConfiguration)
	if !reflect.DeepEqual(kc.ClusterDNS, []string{"10.100.0.53"}) || kc.ClusterDomain != "corp.example" || kc.CgroupDriver != "systemd" || !kc.RotateCertificates {
		t.Errorf("kubelet config: clusterDNS %v domain %q cgroupDriver %q rotate %t", kc.ClusterDNS, kc.ClusterDomain, kc.CgroupDriver, kc.RotateCertificates)
	}
	if _, ok := kubeletCM.Annotations["kubeadm.kubernetes.io/component-config.hash"]; !ok {
		t.Error("kubelet-config lacks kubeadm's hash annotation")
	}
	for _, o := range []*corev1.ConfigMap{kubeadmCM, kubeletCM} {
		for k, v := range o.Data {
			if strings.Contains(strings.ToLower(v), "private key") || strings.Contains(v, "token:") {
				t.Errorf("%s/%s key %s looks secret", o.Namespace, o.Name, k)
			}
		}
	}
}
