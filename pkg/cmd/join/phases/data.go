// Package phases holds the phases of "edgeadm join", one file each, and the
// narrow Data interface they share. The command (package join) owns the data
// and the workflow runner; a phase only reads what Data offers and changes
// the host only through Data.Host().
package phases

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	kubeadmapi "k8s.io/kubernetes/cmd/kubeadm/app/apis/kubeadm"
	"k8s.io/kubernetes/cmd/kubeadm/app/discovery/token"

	"github.com/edgeadm/edgeadm/pkg/host"
	"github.com/edgeadm/edgeadm/pkg/installpkg"
	"github.com/edgeadm/edgeadm/pkg/journal"
)

// EdgeNodeLabel is put on every node edgeadm joins.
const (
	EdgeNodeLabel      = "superedge.io/edge-node"
	EdgeNodeLabelValue = "enable"
)

// KubernetesDefault is the name every apiserver certificate carries, which an
// IP join reaches through an /etc/hosts line.
const KubernetesDefault = "kubernetes.default"

// Data is what the join phases need.
type Data interface {
	Context() context.Context
	// Host is where every change goes: the journal over the real host, or a
	// dry run. Reads go through it too.
	Host() host.Host
	Paths() host.Paths
	DryRun() bool
	// Out receives progress lines ("[phase] ...").
	Out() io.Writer
	// Warn records a warning for the report and prints it.
	Warn(name, msg string)
	Env() *Env

	Target() Target
	// Token is secret: it must not reach any output, log or error.
	Token() string
	CACertHashes() []string
	UnsafeSkipCAVerification() bool
	NodeName() string
	// NodeIP is --node-ip, or the local address of the route to the API server.
	NodeIP() (string, error)
	// NodeLabels are the labels the node gets, the edge label included.
	NodeLabels() map[string]string
	IgnorePreflightErrors() map[string]bool
	// Timeout bounds each wait (discovery, TLS bootstrap, Node Ready).
	Timeout() time.Duration

	// Journal is the record of earlier runs (read-only for the phases).
	Journal() *journal.Journal
	// Params are this run's parameters as the journal records them.
	Params() Params
	// Resuming says that an interrupted join with the same parameters is
	// being continued.
	Resuming() bool
	SetResuming(bool)
	// AlreadyJoined is set by preflight when an identical join completed
	// and the kubelet is healthy: every later phase is then skipped.
	AlreadyJoined() bool
	SetAlreadyJoined(bool)

	// Package fetches and verifies the install package the first time, and
	// returns the same one after.
	Package() (*installpkg.Package, error)
	// ClusterInfo is what preflight learned and checked about the cluster.
	ClusterInfo() *ClusterInfo
	SetClusterInfo(*ClusterInfo)
	// BootstrapKubeconfig is the kubeconfig the discovery phase wrote (or,
	// in a dry run, would write).
	BootstrapKubeconfig() (*clientcmdapi.Config, error)
	SetBootstrapKubeconfig(*clientcmdapi.Config)
}

// Params identify a join: a second join with the same Params after a
// completed one is a no-op; with others it is refused. No secrets here.
type Params struct {
	Endpoint         string            `json:"endpoint"`
	NodeName         string            `json:"nodeName"`
	NodeLabels       map[string]string `json:"nodeLabels,omitempty"`
	InstallPkgPath   string            `json:"installPkgPath"` // redacted
	InstallPkgSHA256 string            `json:"installPkgSHA256,omitempty"`
}

// Target is where the cluster is, and how this node names it.
type Target struct {
	// Endpoint is the <host>:<port> given on the command line.
	Endpoint string
	// Host is the IP or domain of Endpoint; Port its port.
	Host string
	Port string
	// IsIP: Host is an IP address. The node then reaches the API server as
	// kubernetes.default, mapped to Host by /etc/hosts.
	IsIP bool
}

// ServerName is the name the node verifies the API server's certificate
// against: kubernetes.default for an IP join, the domain otherwise.
func (t Target) ServerName() string {
	if t.IsIP {
		return KubernetesDefault
	}
	return t.Host
}

// Server is the API server URL the node's kubeconfigs use.
func (t Target) Server() string {
	return "https://" + net.JoinHostPort(t.ServerName(), t.Port)
}

// ClusterInfo is what preflight found in kube-public/cluster-info and checked
// against the token and the CA pins.
type ClusterInfo struct {
	ClusterName string
	// CAData is the cluster CA, PEM.
	CAData []byte
	// KubeletConfig is kube-system/kubelet-config's "kubelet" document.
	KubeletConfig []byte
}

// Env is the world outside the host seam: who we run as, the network, the
// cluster. Tests replace its functions.
type Env struct {
	Euid func() int
	// Listen checks a port is free (the listener is closed at once).
	Listen func(network, addr string) (net.Listener, error)
	// DialTLS connects without trusting the server, to read its certificate.
	DialTLS func(ctx context.Context, addr string, cfg *tls.Config) (*tls.Conn, error)
	// Dial is a plain dial (node IP detection uses a UDP "dial" that sends nothing).
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// Discover is kubeadm's token discovery.
	Discover func(cfg *kubeadmapi.Discovery, timeout time.Duration) (*clientcmdapi.Config, error)
	// NewClient makes a clientset.
	NewClient func(*rest.Config) (kubernetes.Interface, error)
	// KubeletHealthy asks the local kubelet's healthz endpoint.
	KubeletHealthy func(ctx context.Context) error
	// EdgeHubReady asks the local edgehub's readyz endpoint.
	EdgeHubReady func(ctx context.Context) error
	// OpenPackage fetches and verifies an install package.
	OpenPackage func(ctx context.Context, o installpkg.Options) (*installpkg.Package, error)
	Getenv      func(string) string
	// PollInterval is how often a bounded wait on the host looks again.
	PollInterval time.Duration
}

// DefaultEnv is the real world.
func DefaultEnv() *Env {
	return &Env{
		Euid:   os.Geteuid,
		Listen: net.Listen,
		DialTLS: func(ctx context.Context, addr string, cfg *tls.Config) (*tls.Conn, error) {
			d := &tls.Dialer{NetDialer: &net.Dialer{Timeout: 10 * time.Second}, Config: cfg}
			c, err := d.DialContext(ctx, "tcp", addr)
			if err != nil {
				return nil, err
			}
			return c.(*tls.Conn), nil
		},
		Dial: (&net.Dialer{Timeout: 10 * time.Second}).DialContext,
		Discover: func(cfg *kubeadmapi.Discovery, timeout time.Duration) (*clientcmdapi.Config, error) {
			return token.RetrieveValidatedConfigInfo(nil, cfg, timeout)
		},
		NewClient: func(c *rest.Config) (kubernetes.Interface, error) { return kubernetes.NewForConfig(c) },
		KubeletHealthy: func(ctx context.Context) error {
			ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://127.0.0.1:"+strconv.Itoa(KubeletHealthzPort)+"/healthz", nil)
			if err != nil {
				return err
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return &httpStatusError{resp.StatusCode}
			}
			return nil
		},
		EdgeHubReady: func(ctx context.Context) error { return HTTPReady(ctx, EdgeHubReadyURL) },
		OpenPackage:  installpkg.Open,
		Getenv:       os.Getenv,
		PollInterval: 500 * time.Millisecond,
	}
}

type httpStatusError struct{ code int }

func (e *httpStatusError) Error() string {
	return "kubelet healthz answered HTTP " + strconv.Itoa(e.code)
}

// Ports the kubelet listens on.
const (
	KubeletPort        = 10250
	KubeletHealthzPort = 10248
)
