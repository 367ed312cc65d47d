package edgehub

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/edgeadm/edgeadm/pkg/edgehub/redirect"
)

// APIVersion and Kind name edgehub's configuration file format.
const (
	APIVersion = "edgehub.edgeadm.io/v1alpha1"
	Kind       = "EdgeHubConfiguration"
)

// Defaults for every field but nodeName and upstreams.
const (
	DefaultConfigPath          = "/etc/edgehub/config.yaml"
	DefaultListenAddress       = "127.0.0.1:10261"
	DefaultHealthAddress       = "127.0.0.1:10262"
	DefaultClusterCAFile       = "/etc/kubernetes/pki/ca.crt"
	DefaultNodeCertificateFile = "/var/lib/kubelet/pki/kubelet-client-current.pem"
	DefaultDataDir             = "/var/lib/edgehub"
	DefaultClusterDomain       = "cluster.local"
)

// Config is the content of edgehub's configuration file.
type Config struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	// NodeName is the node this edgehub serves; a client certificate for
	// system:node:<NodeName> is the node's own.
	NodeName string `json:"nodeName"`
	// ListenAddress serves the API face (TLS) for the kubelet and local clients.
	ListenAddress string `json:"listenAddress,omitempty"`
	// HealthAddress serves /healthz, /readyz and /metrics over plain HTTP.
	HealthAddress string `json:"healthAddress,omitempty"`
	// Upstreams are apiserver URLs (https) by a name their certificate carries.
	Upstreams []string `json:"upstreams"`
	// ClusterCAFile verifies the apiserver and local client certificates.
	ClusterCAFile string `json:"clusterCAFile,omitempty"`
	// NodeCertificateFile holds the kubelet's client certificate and key;
	// edgehub acts as the node with it. Absent until TLS bootstrap is done.
	NodeCertificateFile string `json:"nodeCertificateFile,omitempty"`
	// DataDir holds edgehub's local serving PKI and its cache.
	DataDir string `json:"dataDir,omitempty"`
	// InClusterAddress (nodeIP:port), when set, serves pods that use the
	// in-cluster configuration: edgehub gets a certificate of the cluster CA
	// for the kubernetes Service and redirects that Service's IP:443 here
	// (docs/edgehub.md, "How pods reach it"). Empty: not done.
	InClusterAddress string `json:"inClusterAddress,omitempty"`
	// ClusterDomain is the cluster's DNS domain, for the in-cluster
	// certificate's name kubernetes.default.svc.<clusterDomain>; empty:
	// DefaultClusterDomain.
	ClusterDomain string `json:"clusterDomain,omitempty"`
}

// Tuning is what the configuration file does not expose: the probing and
// hysteresis of the upstream state. Tests shorten it.
type Tuning struct {
	ProbeInterval time.Duration // how often each upstream is probed
	ProbeTimeout  time.Duration // bound on one probe
	// DialTimeout bounds connecting to an upstream for a proxied request:
	// a dead link must turn into "offline" quickly, not after the OS timeout.
	DialTimeout time.Duration
	// An upstream is down after FailuresToDown consecutive failures (probes
	// or requests) and up again after SuccessesToUp consecutive probe
	// successes: a weak link does not flap.
	FailuresToDown int
	SuccessesToUp  int
	// LearnInterval is how often the cluster's default/kubernetes
	// EndpointSlice is read to learn more upstreams (0: never).
	LearnInterval time.Duration
	// ServiceCertInterval is how often the in-cluster face looks at its
	// certificate and redirect (and retries what failed).
	ServiceCertInterval time.Duration
	// Redirect runs iptables for the in-cluster redirect; nil: the
	// redirect is not touched (tests that run no iptables).
	Redirect redirect.Runner
}

// DefaultTuning is what edgehub runs with.
func DefaultTuning() Tuning {
	return Tuning{
		ProbeInterval:  2 * time.Second,
		ProbeTimeout:   time.Second,
		DialTimeout:    2 * time.Second,
		FailuresToDown: 3,
		SuccessesToUp:  2,
		LearnInterval:  time.Minute,

		ServiceCertInterval: 30 * time.Second,
		Redirect:            redirect.Exec,
	}
}

// LoadConfig reads, defaults and validates the configuration file at path.
// Unknown fields are refused, so a typo is not silently ignored.
func LoadConfig(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read edgehub configuration: %w", err)
	}
	return ParseConfig(data, path)
}

// ParseConfig is LoadConfig on bytes; source names them in errors.
func ParseConfig(data []byte, source string) (*Config, error) {
	var c Config
	if err := yaml.UnmarshalStrict(data, &c); err != nil {
		return nil, fmt.Errorf("%s: %w (the fields are apiVersion, kind, nodeName, listenAddress, healthAddress, upstreams, clusterCAFile, nodeCertificateFile, dataDir, inClusterAddress, clusterDomain)", source, err)
	}
	c.SetDefaults()
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", source, err)
	}
	return &c, nil
}

// SetDefaults fills every empty field that has a default.
func (c *Config) SetDefaults() {
	def := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	def(&c.ListenAddress, DefaultListenAddress)
	def(&c.HealthAddress, DefaultHealthAddress)
	def(&c.ClusterCAFile, DefaultClusterCAFile)
	def(&c.NodeCertificateFile, DefaultNodeCertificateFile)
	def(&c.DataDir, DefaultDataDir)
}

// Validate reports every problem of a defaulted configuration at once.
func (c *Config) Validate() error {
	var errs []error
	if c.APIVersion != APIVersion {
		errs = append(errs, fmt.Errorf("apiVersion is %q, want %q", c.APIVersion, APIVersion))
	}
	if c.Kind != Kind {
		errs = append(errs, fmt.Errorf("kind is %q, want %q", c.Kind, Kind))
	}
	if c.NodeName == "" {
		errs = append(errs, errors.New("nodeName is empty: set it to the node's name as registered (the kubelet's --hostname-override or host name)"))
	}
	if len(c.Upstreams) == 0 {
		errs = append(errs, errors.New("upstreams is empty: list the apiserver URL the node joined, e.g. [\"https://kubernetes.default:6443\"]"))
	}
	for _, u := range c.Upstreams {
		if _, err := ParseUpstream(u); err != nil {
			errs = append(errs, err)
		}
	}
	for name, addr := range map[string]string{"listenAddress": c.ListenAddress, "healthAddress": c.HealthAddress} {
		if _, _, err := net.SplitHostPort(addr); err != nil {
			errs = append(errs, fmt.Errorf("%s %q is not host:port: %w", name, addr, err))
		}
	}
	for name, p := range map[string]string{"clusterCAFile": c.ClusterCAFile, "nodeCertificateFile": c.NodeCertificateFile, "dataDir": c.DataDir} {
		if !filepath.IsAbs(p) {
			errs = append(errs, fmt.Errorf("%s %q must be an absolute path", name, p))
		}
	}
	if c.InClusterAddress != "" {
		if ap, err := netip.ParseAddrPort(c.InClusterAddress); err != nil || ap.Port() == 0 || ap.Addr().IsUnspecified() || ap.Addr().IsLoopback() {
			errs = append(errs, fmt.Errorf("inClusterAddress %q must be the node's IP and a port, e.g. 192.0.2.10:10270 (pods' connections are redirected there; not a name, 0.0.0.0 or loopback)", c.InClusterAddress))
		}
	}
	if c.ClusterDomain != "" && (strings.Trim(c.ClusterDomain, ".") == "" || strings.ContainsAny(c.ClusterDomain, " /:")) {
		errs = append(errs, fmt.Errorf("clusterDomain %q is not a DNS domain (the kubelet's clusterDomain, e.g. cluster.local)", c.ClusterDomain))
	}
	return errors.Join(errs...)
}

// ParseUpstream checks that s is an https URL with a host and no path.
func ParseUpstream(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("upstream %q: %w", s, err)
	}
	if u.Scheme != "https" || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.User != nil {
		return nil, fmt.Errorf("upstream %q must be https://host[:port] with no path, query or user (the apiserver's address by a name its certificate carries)", s)
	}
	u.Path = ""
	return u, nil
}

// PKIDir is where edgehub's local serving CA and certificate live.
func (c *Config) PKIDir() string { return filepath.Join(c.DataDir, "pki") }

// CacheDir is where the store keeps its files.
func (c *Config) CacheDir() string { return filepath.Join(c.DataDir, "cache") }
