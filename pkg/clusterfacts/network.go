package clusterfacts

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"regexp"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	kubeadmconstants "k8s.io/kubernetes/cmd/kubeadm/app/constants"
	"sigs.k8s.io/yaml"
)

// DefaultDNSDomain is Kubernetes' default cluster domain.
const DefaultDNSDomain = "cluster.local"

// kubeadmNetworking is the part of a ClusterConfiguration addon reads. It is
// decoded loosely so every kubeadm config version serves.
type kubeadmNetworking struct {
	KubernetesVersion string `json:"kubernetesVersion"`
	Networking        struct {
		ServiceSubnet string `json:"serviceSubnet"`
		PodSubnet     string `json:"podSubnet"`
		DNSDomain     string `json:"dnsDomain"`
	} `json:"networking"`
}

func (s *snap) kubeadmNetworking() *kubeadmNetworking {
	if s.kubeadmConfig == nil {
		return nil
	}
	var n kubeadmNetworking
	if err := yaml.Unmarshal([]byte(s.kubeadmConfig.Data[kubeadmconstants.ClusterConfigurationConfigMapKey]), &n); err != nil {
		return nil
	}
	return &n
}

func learnEndpoints(s *snap, f *Facts) {
	for _, sl := range s.slices {
		port := 0
		for _, p := range sl.Ports {
			if p.Port != nil && (p.Name == nil || *p.Name == "https") {
				port = int(*p.Port)
			}
		}
		if port == 0 {
			continue
		}
		if f.SecurePort == 0 {
			f.SecurePort, f.SecurePortSource = port, "the kubernetes EndpointSlice"
		}
		for _, ep := range sl.Endpoints {
			for _, a := range ep.Addresses {
				f.Endpoints = append(f.Endpoints, net.JoinHostPort(a, strconv.Itoa(port)))
			}
		}
	}
	if f.SecurePort == 0 && s.kubernetesSvc != nil {
		for _, p := range s.kubernetesSvc.Spec.Ports {
			if p.Name == "https" && p.TargetPort.IntValue() > 0 {
				f.SecurePort, f.SecurePortSource = p.TargetPort.IntValue(), "the kubernetes Service's targetPort"
			}
		}
	}
	if f.SecurePort == 0 {
		if u, err := url.Parse(f.Server); err == nil {
			p, _ := strconv.Atoi(u.Port())
			if p == 0 {
				p = 443
			}
			f.SecurePort, f.SecurePortSource = p, "the kubeconfig's server URL"
			f.warnf("the apiserver's secure port could not be read from the cluster; using %d from the kubeconfig", p)
		}
	}
}

func learnServiceCIDR(ctx context.Context, c kubernetes.Interface, s *snap, f *Facts) {
	if n := s.kubeadmNetworking(); n != nil {
		f.PodCIDR = n.Networking.PodSubnet
		if n.Networking.ServiceSubnet != "" {
			f.ServiceCIDR, f.ServiceCIDRSource = n.Networking.ServiceSubnet, "kube-system/kubeadm-config"
			return
		}
	}
	if s.serviceCIDR != nil && len(s.serviceCIDR.Spec.CIDRs) > 0 {
		f.ServiceCIDR, f.ServiceCIDRSource = strings.Join(s.serviceCIDR.Spec.CIDRs, ","), "the ServiceCIDR kubernetes"
		return
	}
	var svcIP netip.Addr
	if s.kubernetesSvc != nil {
		svcIP, _ = netip.ParseAddr(s.kubernetesSvc.Spec.ClusterIP)
	}
	if !svcIP.IsValid() {
		f.ServiceCIDR, f.ServiceCIDRSource = "10.96.0.0/12", "kubeadm's default (guessed)"
		f.warnf("the service CIDR could not be learned (no kubeadm-config, no ServiceCIDR, no kubernetes Service); guessing kubeadm's default %s", f.ServiceCIDR)
		return
	}
	if cidr, err := probeServiceCIDR(ctx, c, svcIP); err == nil {
		f.ServiceCIDR, f.ServiceCIDRSource = cidr, "the apiserver's answer to a dry-run Service outside the range"
		return
	} else {
		guess := netip.PrefixFrom(svcIP, 12).Masked()
		if svcIP.Is6() {
			guess = netip.PrefixFrom(svcIP, 112).Masked()
		}
		f.ServiceCIDR, f.ServiceCIDRSource = guess.String(), "the kubernetes Service IP (guessed prefix)"
		f.warnf("the service CIDR could not be learned (%v); guessing %s around the kubernetes Service IP %s", err, guess, svcIP)
	}
}

var cidrInText = regexp.MustCompile(`[0-9a-fA-F.:]+/[0-9]{1,3}`)

// probeServiceCIDR asks the apiserver, with a server-side dry-run create (so
// nothing is stored or allocated), for a Service whose ClusterIP lies outside
// any plausible range; the refusal names the valid range.
func probeServiceCIDR(ctx context.Context, c kubernetes.Interface, svcIP netip.Addr) (string, error) {
	candidates := []string{"192.0.2.1", "198.51.100.1", "203.0.113.1"} // RFC 5737 documentation ranges
	if svcIP.Is6() {
		candidates = []string{"2001:db8::1", "2001:db8:1::1"}
	}
	var lastErr error
	for _, ip := range candidates {
		svc := &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{GenerateName: "edgeadm-probe-"},
			Spec: corev1.ServiceSpec{
				ClusterIP: ip,
				Ports:     []corev1.ServicePort{{Port: 1, Protocol: corev1.ProtocolTCP}},
			},
		}
		_, err := c.CoreV1().Services(metav1.NamespaceDefault).Create(ctx, svc, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		if err == nil {
			lastErr = fmt.Errorf("%s is inside the range", ip)
			continue
		}
		for _, m := range cidrInText.FindAllString(err.Error(), -1) {
			p, perr := netip.ParsePrefix(m)
			if perr == nil && p.Contains(svcIP) {
				return p.Masked().String(), nil
			}
		}
		lastErr = fmt.Errorf("the apiserver's answer names no range holding %s: %v", svcIP, err)
	}
	return "", lastErr
}

func learnDNS(s *snap, f *Facts) {
	for _, name := range []string{"kube-dns", "coredns"} {
		for _, svc := range s.dnsSvcs {
			if svc.Name == name && net.ParseIP(svc.Spec.ClusterIP) != nil {
				f.ClusterDNS, f.ClusterDNSSource = svc.Spec.ClusterIP, "Service kube-system/"+name
				break
			}
		}
		if f.ClusterDNS != "" {
			break
		}
	}
	if f.ClusterDNS == "" {
		if ip, err := kubeadmconstants.GetDNSIP(f.ServiceCIDR); err == nil {
			f.ClusterDNS, f.ClusterDNSSource = ip.String(), "the 10th address of the service CIDR, as kubeadm picks it"
		}
	}

	if n := s.kubeadmNetworking(); n != nil && n.Networking.DNSDomain != "" {
		f.DNSDomain, f.DNSDomainSource = n.Networking.DNSDomain, "kube-system/kubeadm-config"
		return
	}
	if s.kubeletConfig != nil {
		var kc struct {
			ClusterDomain string `json:"clusterDomain"`
		}
		if yaml.Unmarshal([]byte(s.kubeletConfig.Data[kubeadmconstants.KubeletBaseConfigurationConfigMapKey]), &kc) == nil && kc.ClusterDomain != "" {
			f.DNSDomain, f.DNSDomainSource = kc.ClusterDomain, "kube-system/kubelet-config"
			return
		}
	}
	if d := corefileDomain(s.corefile); d != "" {
		f.DNSDomain, f.DNSDomainSource = d, "the CoreDNS Corefile (kube-system/coredns)"
		return
	}
	f.DNSDomain, f.DNSDomainSource = DefaultDNSDomain, "the Kubernetes default (guessed)"
	f.warnf("the cluster DNS domain could not be learned (no kubeadm-config, kubelet-config or CoreDNS Corefile says it); assuming %s", DefaultDNSDomain)
}

var corefileKubernetes = regexp.MustCompile(`(?m)^\s*kubernetes\s+([A-Za-z0-9.-]+)[\s{]`)

// corefileDomain reads the cluster domain from CoreDNS's kubernetes plugin
// line ("kubernetes cluster.local in-addr.arpa ip6.arpa {").
func corefileDomain(cm *corev1.ConfigMap) string {
	if cm == nil {
		return ""
	}
	m := corefileKubernetes.FindStringSubmatch(cm.Data["Corefile"])
	if m == nil {
		return ""
	}
	return strings.TrimSuffix(m[1], ".")
}
