package phases

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"path"
	"strconv"
	"strings"
	"time"

	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/kubernetes/cmd/kubeadm/app/cmd/phases/workflow"
	kubeconfigutil "k8s.io/kubernetes/cmd/kubeadm/app/util/kubeconfig"
	"sigs.k8s.io/yaml"

	"github.com/edgeadm/edgeadm/pkg/host"
)

// Where edgehub lives on an edge node, as its configuration contract
// (pkg/edgehub) and install-pkg/systemd/edgehub.service name it.
const (
	EdgeHubUnit      = "edgehub.service"
	EdgeHubConfigDir = "/etc/edgehub"
	EdgeHubConfig    = "/etc/edgehub/config.yaml"
	EdgeHubDataDir   = "/var/lib/edgehub"
	EdgeHubListen    = "127.0.0.1:10261"
	// EdgeHubInClusterPort is where, on the node's IP, edgehub serves the
	// pods whose connections to the kubernetes Service it redirects.
	EdgeHubInClusterPort = 10270
	EdgeHubHealth        = "127.0.0.1:10262"
	edgeHubAPIVersion    = "edgehub.edgeadm.io/v1alpha1"
	edgeHubKind          = "EdgeHubConfiguration"
	// nodeCertificate is the kubelet's rotating client certificate (and
	// key), which edgehub uses to act as the node once TLS bootstrap wrote it.
	nodeCertificate = "/var/lib/kubelet/pki/kubelet-client-current.pem"
)

// The ports of EdgeHubListen and EdgeHubHealth, which preflight wants free.
const (
	EdgeHubPort       = 10261
	EdgeHubHealthPort = 10262
)

// EdgeHubServer is the API server address the node's kubelet uses: its
// edgehub.
const EdgeHubServer = "https://" + EdgeHubListen

// EdgeHubCA is edgehub's own local serving CA, made by "edgehub init": the
// kubelet verifies edgehub with it.
func EdgeHubCA() string { return path.Join(EdgeHubDataDir, "pki", "ca.crt") }

// EdgeHubReadyURL is what join waits for before it starts the kubelet.
const EdgeHubReadyURL = "http://" + EdgeHubHealth + "/readyz"

// EdgeHubConfiguration is edgehub's configuration file as join writes it.
// It holds no secret: the node's credentials stay in the kubelet's files.
type EdgeHubConfiguration struct {
	APIVersion          string   `json:"apiVersion"`
	Kind                string   `json:"kind"`
	NodeName            string   `json:"nodeName"`
	ListenAddress       string   `json:"listenAddress"`
	HealthAddress       string   `json:"healthAddress"`
	Upstreams           []string `json:"upstreams"`
	ClusterCAFile       string   `json:"clusterCAFile"`
	NodeCertificateFile string   `json:"nodeCertificateFile"`
	DataDir             string   `json:"dataDir"`
	InClusterAddress    string   `json:"inClusterAddress,omitempty"`
	ClusterDomain       string   `json:"clusterDomain,omitempty"`
}

// EdgeHubConfigFor is the configuration of the edgehub of node, which
// forwards to the API server the node joined, by the name its certificate
// carries (the server the bootstrap kubeconfig named before edgehub).
func EdgeHubConfigFor(node string, t Target, p host.Paths) ([]byte, error) {
	return EdgeHubConfigForNode(node, "", "", t, p)
}

// EdgeHubConfigForNode is EdgeHubConfigFor with edgehub also serving the
// node's pods that use the in-cluster configuration, on nodeIP (none when
// nodeIP is empty), for the cluster DNS domain clusterDomain (empty:
// edgehub's default, cluster.local).
func EdgeHubConfigForNode(node, nodeIP, clusterDomain string, t Target, p host.Paths) ([]byte, error) {
	c := EdgeHubConfiguration{
		APIVersion: edgeHubAPIVersion, Kind: edgeHubKind,
		NodeName:      node,
		ListenAddress: EdgeHubListen, HealthAddress: EdgeHubHealth,
		Upstreams:           []string{t.Server()},
		ClusterCAFile:       p.CACert,
		NodeCertificateFile: nodeCertificate,
		DataDir:             EdgeHubDataDir,
	}
	if nodeIP != "" {
		c.InClusterAddress = net.JoinHostPort(nodeIP, strconv.Itoa(EdgeHubInClusterPort))
		c.ClusterDomain = clusterDomain
	}
	data, err := yaml.Marshal(c)
	if err != nil {
		return nil, err
	}
	return append([]byte(fileHeader), data...), nil
}

// ClusterDomainOf is the clusterDomain of the cluster's KubeletConfiguration
// (the name edgehub's kubernetes Service certificate carries), "" when it
// names none.
func ClusterDomainOf(kubeletConfig []byte) string {
	var kc struct {
		ClusterDomain string `json:"clusterDomain"`
	}
	if yaml.Unmarshal(kubeletConfig, &kc) != nil {
		return ""
	}
	return strings.TrimSuffix(kc.ClusterDomain, ".")
}

// HTTPReady asks url and wants 200 OK, bounded by a few seconds.
func HTTPReady(ctx context.Context, url string) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s answered HTTP %d", url, resp.StatusCode)
	}
	return nil
}

// NewEdgeHubPhase configures and starts edgehub, the node's local face of
// the API server, and points the kubelet's bootstrap kubeconfig at it. A
// package without edgehub (the slot is optional in format 1) joins the
// kubelet straight to the API server, with a warning.
func NewEdgeHubPhase() workflow.Phase {
	return workflow.Phase{
		Name: "edgehub",
		Short: "Configure and start edgehub (" + EdgeHubConfig + "), and point the kubelet's bootstrap kubeconfig at it (" +
			EdgeHubServer + ")",
		InheritFlags: Flags,
		RunIf:        notJoined,
		Run: func(c workflow.RunData) error {
			d := c.(Data)
			pkg, err := d.Package()
			if err != nil {
				return err
			}
			if pkg.Components.Edgehub == "" {
				d.Warn("EdgeHub", "the install package has no edgehub: the kubelet talks to the API server directly "+
					"and this node stops working when the cloud is unreachable; rebuild the package with make install-pkg")
				return nil
			}
			return startEdgeHub(d)
		},
	}
}

func startEdgeHub(d Data) error {
	h, p, ctx := d.Host(), d.Paths(), d.Context()
	nodeIP, err := d.NodeIP()
	if err != nil {
		return err
	}
	var domain string
	if ci := d.ClusterInfo(); ci != nil {
		domain = ClusterDomainOf(ci.KubeletConfig)
	}
	cfg, err := EdgeHubConfigForNode(d.NodeName(), nodeIP, domain, d.Target(), p)
	if err != nil {
		return err
	}
	if err := h.MkdirAll(EdgeHubConfigDir, 0o755); err != nil {
		return err
	}
	if err := h.WriteFile(EdgeHubConfig, cfg, host.Public); err != nil {
		return err
	}
	// edgehub makes its PKI and cache (secrets among them) in its data
	// directory, made 0700 here so it is private whatever edgehub's
	// defaults, then noted, so that reset removes everything edgehub put in
	// it (after stopping edgehub) and then the directory itself.
	if err := h.MkdirAll(EdgeHubDataDir, 0o700); err != nil {
		return err
	}
	if err := h.Residue(ctx, host.Residue{Kind: host.ResidueDir, Path: EdgeHubDataDir}); err != nil {
		return err
	}
	bin := path.Join(p.BinDir, "edgehub")
	if out, err := h.Run(ctx, host.Cmd(bin, "init", "--config", EdgeHubConfig)); err != nil {
		return fmt.Errorf("edgehub could not make its PKI in %s: %w", EdgeHubDataDir, err)
	} else if len(out) > 0 && !d.DryRun() {
		fmt.Fprintf(d.Out(), "[edgehub] %s", out)
	}
	if err := h.Systemctl(ctx, host.Enable, EdgeHubUnit); err != nil {
		return err
	}
	if err := h.Systemctl(ctx, host.Start, EdgeHubUnit); err != nil {
		return fmt.Errorf("%w (see: journalctl -u edgehub)", err)
	}
	if d.DryRun() {
		fmt.Fprintf(d.Out(), "[edgehub] Would wait up to %s for %s\n", d.Timeout(), EdgeHubReadyURL)
	} else {
		if err := waitEdgeHub(d); err != nil {
			return err
		}
		fmt.Fprintf(d.Out(), "[edgehub] edgehub serves on %s, forwarding to %s\n", EdgeHubServer, d.Target().Server())
	}
	return pointKubeletAtEdgeHub(d)
}

// waitEdgeHub waits, bounded, until edgehub says it is ready.
func waitEdgeHub(d Data) error {
	var last error
	err := waitFor(d.Context(), d.Env().PollInterval, d.Timeout(), func() (bool, error) {
		if last = d.Env().EdgeHubReady(d.Context()); last == nil {
			return true, nil
		}
		s, err := d.Host().UnitState(d.Context(), EdgeHubUnit)
		if err == nil && s.Active == "failed" {
			return false, fmt.Errorf("%s failed (see: journalctl -u edgehub)", EdgeHubUnit)
		}
		return false, nil
	})
	if err != nil {
		if last != nil {
			err = fmt.Errorf("%w (last: %v)", err, last)
		}
		return fmt.Errorf("edgehub did not become ready: %w; see \"journalctl -u edgehub\"", err)
	}
	return nil
}

// pointKubeletAtEdgeHub rewrites the bootstrap kubeconfig discovery wrote:
// same cluster name and token, but edgehub's address and CA. The kubelet's
// TLS bootstrap copies both into kubelet.conf, so from then on everything
// the node says to the cluster goes through edgehub.
func pointKubeletAtEdgeHub(d Data) error {
	h, p := d.Host(), d.Paths()
	direct, err := d.BootstrapKubeconfig()
	if err != nil {
		return err
	}
	clusterName, _, err := kubeconfigutil.GetClusterFromKubeConfig(direct)
	if err != nil {
		return fmt.Errorf("%s: %w", p.BootstrapKubeconfig, err)
	}
	ca, err := h.ReadFile(EdgeHubCA())
	switch {
	case err == nil:
	case d.DryRun() && errors.Is(err, fs.ErrNotExist):
		// "edgehub init" did not run: what would be written has its CA.
	default:
		return fmt.Errorf("edgehub's CA (made by edgehub init): %w", err)
	}
	kc := kubeconfigutil.CreateWithToken(EdgeHubServer, clusterName, TLSBootstrapUser, ca, d.Token())
	data, err := clientcmd.Write(*kc)
	if err != nil {
		return err
	}
	if err := h.WriteFile(p.BootstrapKubeconfig, data, host.Private); err != nil {
		return err
	}
	if !d.DryRun() {
		d.SetBootstrapKubeconfig(kc)
	}
	fmt.Fprintf(d.Out(), "[edgehub] %s now names %s (edgehub's CA %s)\n", p.BootstrapKubeconfig, EdgeHubServer, EdgeHubCA())
	return nil
}
