package clusterfacts

import (
	"context"
	"fmt"
	"sync"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	bootstrapapi "k8s.io/cluster-bootstrap/token/api"
	kubeadmconstants "k8s.io/kubernetes/cmd/kubeadm/app/constants"
)

// snap is every object Gather reads, fetched at once in parallel so that
// learning the facts costs one round trip of wall time.
type snap struct {
	kubeadmConfig, kubeletConfig, clusterInfo *corev1.ConfigMap
	corefile                                  *corev1.ConfigMap
	kubernetesSvc                             *corev1.Service
	dnsSvcs                                   []corev1.Service
	slices                                    []discoveryv1.EndpointSlice
	serviceCIDR                               *networkingv1.ServiceCIDR
	controlPlanePods                          []corev1.Pod
	tokens                                    []corev1.Secret
	// denied names the reads the user may not make; those facts are guessed.
	denied []string
}

func snapshot(ctx context.Context, c kubernetes.Interface) (*snap, error) {
	s := &snap{}
	var mu sync.Mutex
	var errs []error
	var wg sync.WaitGroup
	read := func(what string, fn func() error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := fn()
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil, apierrors.IsNotFound(err):
			case apierrors.IsForbidden(err), apierrors.IsUnauthorized(err):
				s.denied = append(s.denied, what)
			default:
				errs = append(errs, fmt.Errorf("read %s: %w", what, err))
			}
		}()
	}
	sys, pub := metav1.NamespaceSystem, metav1.NamespacePublic
	getCM := func(ns, name string, into **corev1.ConfigMap) func() error {
		return func() error {
			cm, err := c.CoreV1().ConfigMaps(ns).Get(ctx, name, metav1.GetOptions{})
			if err == nil {
				*into = cm
			}
			return err
		}
	}
	read("configmap kube-system/kubeadm-config", getCM(sys, kubeadmconstants.KubeadmConfigConfigMap, &s.kubeadmConfig))
	read("configmap kube-system/kubelet-config", getCM(sys, kubeadmconstants.KubeletBaseConfigurationConfigMap, &s.kubeletConfig))
	read("configmap kube-public/cluster-info", getCM(pub, bootstrapapi.ConfigMapClusterInfo, &s.clusterInfo))
	read("configmap kube-system/coredns", getCM(sys, "coredns", &s.corefile))
	read("service default/kubernetes", func() error {
		svc, err := c.CoreV1().Services(metav1.NamespaceDefault).Get(ctx, "kubernetes", metav1.GetOptions{})
		if err == nil {
			s.kubernetesSvc = svc
		}
		return err
	})
	read("services in kube-system", func() error {
		l, err := c.CoreV1().Services(sys).List(ctx, metav1.ListOptions{})
		if err == nil {
			s.dnsSvcs = l.Items
		}
		return err
	})
	read("endpointslices of default/kubernetes", func() error {
		l, err := c.DiscoveryV1().EndpointSlices(metav1.NamespaceDefault).List(ctx,
			metav1.ListOptions{LabelSelector: discoveryv1.LabelServiceName + "=kubernetes"})
		if err == nil {
			s.slices = l.Items
		}
		return err
	})
	read("servicecidr kubernetes", func() error {
		sc, err := c.NetworkingV1().ServiceCIDRs().Get(ctx, "kubernetes", metav1.GetOptions{})
		if err == nil {
			s.serviceCIDR = sc
		}
		return err
	})
	read("control plane pods in kube-system", func() error {
		l, err := c.CoreV1().Pods(sys).List(ctx,
			metav1.ListOptions{LabelSelector: "component in (kube-apiserver,kube-controller-manager)"})
		if err == nil {
			s.controlPlanePods = l.Items
		}
		return err
	})
	read("bootstrap token secrets in kube-system", func() error {
		l, err := c.CoreV1().Secrets(sys).List(ctx,
			metav1.ListOptions{FieldSelector: "type=" + string(bootstrapapi.SecretTypeBootstrapToken)})
		if err == nil {
			s.tokens = l.Items
		}
		return err
	})
	wg.Wait()
	if len(errs) > 0 {
		return nil, errs[0]
	}
	return s, nil
}
