// Package clusterfacts learns what addon needs to know about a cluster
// instead of assuming it: server version, CA, the apiserver's secure port,
// endpoints and serving certificate names, service CIDR, cluster DNS IP and
// domain, whether bootstrap-token authentication works and whether the
// bootstrapsigner controller signs cluster-info, and whether kubeadm built
// the cluster.
//
// Gathering only reads (and makes one server-side dry-run request); it never
// changes the cluster. Every fact carries where it came from, so the user
// can see what was learned and what was guessed.
package clusterfacts

import (
	"context"
	"crypto/x509"
	"fmt"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// Tri is a yes/no answer that may not be knowable from outside.
type Tri string

const (
	Yes     Tri = "yes"
	No      Tri = "no"
	Unknown Tri = "unknown"
)

// Inputs are what Gather reads the cluster with.
type Inputs struct {
	Client     kubernetes.Interface
	RESTConfig *rest.Config
	// CACertPath is --ca.cert: used when the file is readable; otherwise the
	// kubeconfig's CA, then cluster-info's.
	CACertPath string
	// ServingCert fetches the apiserver's serving certificate chain; nil
	// means dial RESTConfig.Host with TLS. Tests replace it.
	ServingCert func(ctx context.Context) ([]*x509.Certificate, error)
}

// Facts are what Gather learned. The *Source fields say where each value
// came from, in words fit for a progress line.
type Facts struct {
	ServerVersion string `json:"serverVersion"`

	CA       *x509.Certificate `json:"-"`
	CAPEM    []byte            `json:"-"`
	CASource string            `json:"caSource"`
	// CAHash is kubeadm's pin of the CA: sha256:<hex of its SubjectPublicKeyInfo>.
	CAHash string `json:"caHash"`

	// Server is the kubeconfig's server URL, as edgeadm reached it.
	Server string `json:"server"`
	// SecurePort is the port the apiserver serves on (not the Service's 443).
	SecurePort       int    `json:"securePort"`
	SecurePortSource string `json:"securePortSource"`
	// Endpoints are the apiserver addresses host:port from the kubernetes
	// EndpointSlice; empty when the cluster publishes none.
	Endpoints []string `json:"endpoints,omitempty"`
	// CertDNSNames and CertIPs are the names the serving certificate carries.
	CertDNSNames []string `json:"certDNSNames,omitempty"`
	CertIPs      []string `json:"certIPs,omitempty"`

	ServiceCIDR       string `json:"serviceCIDR"`
	ServiceCIDRSource string `json:"serviceCIDRSource"`
	ClusterDNS        string `json:"clusterDNS"`
	ClusterDNSSource  string `json:"clusterDNSSource"`
	DNSDomain         string `json:"dnsDomain"`
	DNSDomainSource   string `json:"dnsDomainSource"`
	PodCIDR           string `json:"podCIDR,omitempty"`

	BootstrapTokenAuth       Tri    `json:"bootstrapTokenAuth"`
	BootstrapTokenAuthReason string `json:"bootstrapTokenAuthReason"`
	BootstrapSigner          Tri    `json:"bootstrapSigner"`
	BootstrapSignerReason    string `json:"bootstrapSignerReason"`

	// Kubeadm is true when kube-system/kubeadm-config exists.
	Kubeadm bool `json:"kubeadm"`
	// ClusterInfo is what kube-public/cluster-info holds, if it exists.
	ClusterInfo *ClusterInfo `json:"clusterInfo,omitempty"`

	// Warnings are facts that were guessed or look wrong.
	Warnings []string `json:"warnings,omitempty"`
}

// ClusterInfo describes an existing kube-public/cluster-info.
type ClusterInfo struct {
	Server string `json:"server,omitempty"`
	// Usable is true when its kubeconfig parses, carries this cluster's CA,
	// and names a server whose host the serving certificate carries.
	Usable bool `json:"usable"`
	// Problem says why it is not usable.
	Problem string `json:"problem,omitempty"`
	// SignedTokenIDs are the token ids with a jws-kubeconfig-<id> signature.
	SignedTokenIDs []string `json:"signedTokenIDs,omitempty"`
}

func (f *Facts) warnf(format string, args ...any) {
	f.Warnings = append(f.Warnings, fmt.Sprintf(format, args...))
}

// Gather learns the facts. It fails only when addon cannot go on without
// the fact (the apiserver cannot be reached, no CA can be found, or the CA
// does not sign the apiserver's certificate); a fact that can only be
// guessed becomes a warning.
func Gather(ctx context.Context, in Inputs) (*Facts, error) {
	f := &Facts{Server: in.RESTConfig.Host}
	v, err := in.Client.Discovery().ServerVersion()
	if err != nil {
		return nil, Unreachable(in.RESTConfig.Host, err)
	}
	f.ServerVersion = v.GitVersion

	s, err := snapshot(ctx, in.Client)
	if err != nil {
		return nil, err
	}
	if err := learnCA(ctx, in, s, f); err != nil {
		return nil, err
	}
	learnEndpoints(s, f)
	learnServiceCIDR(ctx, in.Client, s, f)
	learnDNS(s, f)
	learnBootstrap(ctx, in, s, f)
	learnClusterInfo(s, f)
	return f, nil
}
