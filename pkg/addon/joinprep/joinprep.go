// Package joinprep builds what a kubeadm-style join needs on any cluster:
// namespace kube-public with ConfigMap cluster-info, kube-system
// kubeadm-config and kubelet-config, and the RBAC kubeadm makes so that
// bootstrap tokens can read those, post CSRs and be auto-approved, and
// nodes can rotate their certificates.
//
// Every object here is "create only if missing": one that already exists
// (kubeadm's, the user's, or the cluster's own) is adopted as it is and
// never edited. Names and rules are kubeadm's own (its constants, and its
// objects: rbac_test.go checks them against kubeadm's phases).
package joinprep

import (
	"fmt"
	"net"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apiserver/pkg/authentication/user"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	bootstrapapi "k8s.io/cluster-bootstrap/token/api"
	kubeadmconstants "k8s.io/kubernetes/cmd/kubeadm/app/constants"
	"k8s.io/kubernetes/cmd/kubeadm/app/phases/bootstraptoken/clusterinfo"
	"k8s.io/kubernetes/cmd/kubeadm/app/phases/uploadconfig"

	"github.com/edgeadm/edgeadm/pkg/clusterfacts"
	"github.com/edgeadm/edgeadm/pkg/state"
)

// Result is the planned objects, in creation order, and what the user
// should know about them.
type Result struct {
	Objects []*unstructured.Unstructured
	Notes   []string
}

// Objects returns every join prerequisite for a cluster with facts f, to be
// created where missing. masterHost is the host of --master-public-addr.
func Objects(f *clusterfacts.Facts, masterHost string) (*Result, error) {
	r := &Result{}
	server, note := ClusterInfoServer(f, masterHost)
	if note != "" {
		r.Notes = append(r.Notes, note)
	}
	if ci := f.ClusterInfo; ci != nil && !ci.Usable {
		r.Notes = append(r.Notes, fmt.Sprintf(
			"kube-public/cluster-info exists but %s; it is left as it is (edge join names the server itself), but plain kubeadm joins may fail", ci.Problem))
	}
	clusterInfo, err := clusterInfoConfigMap(server, f.CAPEM)
	if err != nil {
		return nil, err
	}
	kubeadmCfg, kubeletCfg, err := configMaps(f)
	if err != nil {
		return nil, err
	}
	typed := []runtime.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: metav1.NamespacePublic}},
		clusterInfo,
	}
	typed = append(typed, clusterInfoRBAC()...)
	typed = append(typed, kubeadmCfg)
	typed = append(typed, kubeadmConfigRBAC()...)
	typed = append(typed, kubeletCfg)
	typed = append(typed, kubeletConfigRBAC()...)
	typed = append(typed, bootstrapRBAC()...)
	for _, o := range typed {
		u, err := ToUnstructured(o)
		if err != nil {
			return nil, err
		}
		labels := u.GetLabels()
		if labels == nil {
			labels = map[string]string{}
		}
		labels[state.ManagedByLabel] = state.ManagedByValue
		u.SetLabels(labels)
		r.Objects = append(r.Objects, u)
	}
	return r, nil
}

// ClusterInfoServer is the server URL cluster-info should name: a name the
// apiserver certificate carries, preferring kubernetes.default (the name
// edge join maps to the public address). The note, if any, says what was
// chosen when kubernetes.default is not carried.
func ClusterInfoServer(f *clusterfacts.Facts, masterHost string) (string, string) {
	port := strconv.Itoa(f.SecurePort)
	names := []string{"kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc." + f.DNSDomain, "kubernetes"}
	for i, n := range names {
		if f.CertCarries(n) {
			if i == 0 {
				return "https://" + net.JoinHostPort(n, port), ""
			}
			return "https://" + net.JoinHostPort(n, port),
				fmt.Sprintf("the apiserver certificate lacks kubernetes.default; cluster-info names %s instead", n)
		}
	}
	if masterHost != "" && f.CertCarries(masterHost) {
		return "https://" + net.JoinHostPort(masterHost, port),
			fmt.Sprintf("the apiserver certificate lacks kubernetes.default; cluster-info names the public address %s, which it carries", masterHost)
	}
	return "https://" + net.JoinHostPort("kubernetes.default", port), fmt.Sprintf(
		"the apiserver certificate carries none of kubernetes.default, kubernetes, or %q (it has %s): edge nodes can join only through a domain it carries",
		masterHost, strings.Join(append(append([]string{}, f.CertDNSNames...), f.CertIPs...), ", "))
}

func clusterInfoConfigMap(server string, caPEM []byte) (*corev1.ConfigMap, error) {
	// The same shape kubeadm writes: one unnamed cluster, no user, no context.
	b, err := clientcmd.Write(clientcmdapi.Config{
		Clusters: map[string]*clientcmdapi.Cluster{"": {Server: server, CertificateAuthorityData: caPEM}},
	})
	if err != nil {
		return nil, err
	}
	return &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: bootstrapapi.ConfigMapClusterInfo, Namespace: metav1.NamespacePublic},
		Data:       map[string]string{bootstrapapi.KubeConfigKey: string(b)},
	}, nil
}

func role(ns, name string, rules ...rbacv1.PolicyRule) *rbacv1.Role {
	return &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, Rules: rules}
}

func roleBinding(ns, name string, subjects ...rbacv1.Subject) *rbacv1.RoleBinding {
	return &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: name},
		Subjects:   subjects,
	}
}

func clusterRoleBinding(name, clusterRole string, subjects ...rbacv1.Subject) *rbacv1.ClusterRoleBinding {
	return &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: clusterRole},
		Subjects:   subjects,
	}
}

func getConfigMap(name string) rbacv1.PolicyRule {
	return rbacv1.PolicyRule{Verbs: []string{"get"}, APIGroups: []string{""}, Resources: []string{"configmaps"}, ResourceNames: []string{name}}
}

func group(name string) rbacv1.Subject { return rbacv1.Subject{Kind: rbacv1.GroupKind, Name: name} }

// The RBAC below is exactly what kubeadm init makes (names from its
// constants; rbac_test.go compares with kubeadm's phases).

func clusterInfoRBAC() []runtime.Object {
	n := clusterinfo.BootstrapSignerClusterRoleName
	return []runtime.Object{
		role(metav1.NamespacePublic, n, getConfigMap(bootstrapapi.ConfigMapClusterInfo)),
		roleBinding(metav1.NamespacePublic, n, rbacv1.Subject{Kind: rbacv1.UserKind, Name: user.Anonymous}),
	}
}

func kubeadmConfigRBAC() []runtime.Object {
	n := uploadconfig.NodesKubeadmConfigClusterRoleName
	return []runtime.Object{
		role(metav1.NamespaceSystem, n, getConfigMap(kubeadmconstants.KubeadmConfigConfigMap)),
		roleBinding(metav1.NamespaceSystem, n, group(kubeadmconstants.NodeBootstrapTokenAuthGroup), group(kubeadmconstants.NodesGroup)),
	}
}

func kubeletConfigRBAC() []runtime.Object {
	n := kubeadmconstants.KubeletBaseConfigMapRole
	return []runtime.Object{
		role(metav1.NamespaceSystem, n, getConfigMap(kubeadmconstants.KubeletBaseConfigurationConfigMap)),
		roleBinding(metav1.NamespaceSystem, n, group(kubeadmconstants.NodesGroup), group(kubeadmconstants.NodeBootstrapTokenAuthGroup)),
	}
}

func bootstrapRBAC() []runtime.Object {
	tokens := group(kubeadmconstants.NodeBootstrapTokenAuthGroup)
	return []runtime.Object{
		&rbacv1.ClusterRole{
			ObjectMeta: metav1.ObjectMeta{Name: kubeadmconstants.GetNodesClusterRoleName},
			Rules:      []rbacv1.PolicyRule{{Verbs: []string{"get"}, APIGroups: []string{""}, Resources: []string{"nodes"}}},
		},
		clusterRoleBinding(kubeadmconstants.GetNodesClusterRoleName, kubeadmconstants.GetNodesClusterRoleName, tokens),
		clusterRoleBinding(kubeadmconstants.NodeKubeletBootstrap, kubeadmconstants.NodeBootstrapperClusterRoleName, tokens),
		clusterRoleBinding(kubeadmconstants.NodeAutoApproveBootstrapClusterRoleBinding, kubeadmconstants.CSRAutoApprovalClusterRoleName, tokens),
		clusterRoleBinding(kubeadmconstants.NodeAutoApproveCertificateRotationClusterRoleBinding,
			kubeadmconstants.NodeSelfCSRAutoApprovalClusterRoleName, group(kubeadmconstants.NodesGroup)),
	}
}
