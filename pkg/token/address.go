package token

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"

	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/kubernetes"
	"k8s.io/klog/v2"
)

// Address is where edge nodes dial the API server: a host (IP or DNS name)
// and a port. Port 0 means "not given yet".
type Address struct {
	Host string
	Port int
}

// String is host:port, with brackets around an IPv6 host.
func (a Address) String() string {
	if a.Port == 0 {
		return a.Host
	}
	return net.JoinHostPort(a.Host, strconv.Itoa(a.Port))
}

// ParseAddress reads host or host:port ("203.0.113.10", "edge.example.com:443",
// "[2001:db8::1]:6443", "2001:db8::1"). It refuses URLs, the unspecified
// address, and the API server's in-cluster names, which edge nodes cannot use
// as the address they dial.
func ParseAddress(s string) (Address, error) {
	if s == "" {
		return Address{}, errors.New("empty address: give host or host:port")
	}
	if strings.Contains(s, "://") || strings.Contains(s, "/") {
		return Address{}, fmt.Errorf("%q is not host or host:port (no scheme or path: for https://h:p/ give h:p)", s)
	}
	host, portStr, err := net.SplitHostPort(s)
	if ip := net.ParseIP(s); ip != nil {
		host, portStr, err = s, "", nil // a bare IPv6 address
	}
	if err != nil {
		var ae *net.AddrError
		if !errors.As(err, &ae) || ae.Err != "missing port in address" {
			return Address{}, fmt.Errorf("%q is not host or host:port: %v", s, err)
		}
		host, portStr = strings.TrimSuffix(strings.TrimPrefix(s, "["), "]"), ""
	}
	a := Address{Host: host}
	if portStr != "" {
		p, err := strconv.Atoi(portStr)
		if err != nil || p < 1 || p > 65535 {
			return Address{}, fmt.Errorf("port %q of %q is not a number from 1 to 65535", portStr, s)
		}
		a.Port = p
	}
	if ip := net.ParseIP(host); ip != nil {
		if ip.IsUnspecified() {
			return Address{}, fmt.Errorf("%q is the unspecified address: give the address edge nodes dial", s)
		}
		a.Host = ip.String()
		return a, nil
	}
	if strings.Contains(host, ":") {
		return Address{}, fmt.Errorf("%q is not host or host:port (write an IPv6 address with a port as [addr]:port)", s)
	}
	lower := strings.ToLower(strings.TrimSuffix(host, "."))
	if errs := validation.IsDNS1123Subdomain(lower); len(errs) > 0 {
		return Address{}, fmt.Errorf("host %q is neither an IP address nor a DNS name: %s", host, strings.Join(errs, "; "))
	}
	if lower == "kubernetes" || lower == "kubernetes.default" || strings.HasPrefix(lower, "kubernetes.default.svc") {
		return Address{}, fmt.Errorf("%q is the API server's in-cluster name; give the public IP or domain edge nodes dial from outside the cluster", host)
	}
	a.Host = lower
	return a, nil
}

// portSource finds the API server's secure port when --master-public-addr
// has none, without assuming 6443: the port addon recorded, else the port of
// the "kubernetes" Service's endpoints (the API server's own), else the port
// of the kubeconfig's server URL.
type portSource struct {
	client    kubernetes.Interface
	recorded  int
	serverURL string
}

func (p portSource) port(ctx context.Context) (int, string, error) {
	if p.recorded > 0 {
		return p.recorded, "the port recorded by edgeadm addon", nil
	}
	port, err := endpointsPort(ctx, p.client)
	if err != nil {
		return 0, "", err
	}
	if port > 0 {
		return port, "the endpoints of the default/kubernetes Service", nil
	}
	if u, err := url.Parse(p.serverURL); err == nil && u.Host != "" {
		if ps := u.Port(); ps != "" {
			if n, err := strconv.Atoi(ps); err == nil {
				return n, "the kubeconfig's server URL", nil
			}
		} else if u.Scheme == "https" {
			return 443, "the kubeconfig's server URL (https without a port)", nil
		}
	}
	return 0, "", errors.New("cannot learn the API server's port: give it in --master-public-addr as host:port")
}

// endpointsPort returns the "https" port of the API server's endpoints, or 0
// when the cluster does not publish them.
func endpointsPort(ctx context.Context, client kubernetes.Interface) (int, error) {
	slices, err := client.DiscoveryV1().EndpointSlices(metav1.NamespaceDefault).List(ctx, metav1.ListOptions{
		LabelSelector: discoveryv1.LabelServiceName + "=kubernetes",
	})
	if apierrors.IsNotFound(err) || apierrors.IsForbidden(err) {
		klog.V(1).Infof("[token] cannot read the kubernetes endpoints (%v); trying the kubeconfig", err)
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read the endpoints of default/kubernetes: %w", err)
	}
	for _, s := range slices.Items {
		if len(s.Endpoints) == 0 {
			continue
		}
		for _, p := range s.Ports {
			if p.Port != nil && (p.Name == nil || *p.Name == "https") {
				return int(*p.Port), nil
			}
		}
	}
	return 0, nil
}
