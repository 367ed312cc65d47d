package phases

import (
	"errors"
	"fmt"
	"net"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	kubeadmapi "k8s.io/kubernetes/cmd/kubeadm/app/apis/kubeadm"
	"k8s.io/kubernetes/cmd/kubeadm/app/cmd/phases/workflow"
	kubeconfigutil "k8s.io/kubernetes/cmd/kubeadm/app/util/kubeconfig"

	"github.com/edgeadm/edgeadm/pkg/host"
)

// TLSBootstrapUser names the bootstrap kubeconfig's user, as kubeadm does.
const TLSBootstrapUser = "tls-bootstrap-token-user"

// errNeedPreflight: a dry run learns about the cluster in preflight.
var errNeedPreflight = errors.New("a dry run of this phase needs what preflight learns about the cluster: run the whole join with --dry-run")

// NewDiscoveryPhase runs kubeadm's token discovery and writes the kubelet's
// bootstrap kubeconfig and the cluster CA.
func NewDiscoveryPhase() workflow.Phase {
	return workflow.Phase{
		Name: "discovery",
		Short: "Discover the cluster with the bootstrap token (JWS-signed cluster-info, CA pinned by hash) and write " +
			"/etc/kubernetes/bootstrap-kubelet.conf and /etc/kubernetes/pki/ca.crt",
		InheritFlags: Flags,
		RunIf:        notJoined,
		Run: func(c workflow.RunData) error {
			d := c.(Data)
			t := d.Target()
			var clusterName string
			var ca []byte
			if d.DryRun() {
				info := d.ClusterInfo()
				if info == nil {
					return errNeedPreflight
				}
				clusterName, ca = info.ClusterName, info.CAData
			} else {
				// Through the name the node will use: for an IP join the
				// hosts phase mapped kubernetes.default to the address, so the
				// certificate checks out against a name it carries.
				endpoint := net.JoinHostPort(t.ServerName(), t.Port)
				cfg := &kubeadmapi.Discovery{BootstrapToken: &kubeadmapi.BootstrapTokenDiscovery{
					Token:                    d.Token(),
					APIServerEndpoint:        endpoint,
					CACertHashes:             d.CACertHashes(),
					UnsafeSkipCAVerification: d.UnsafeSkipCAVerification(),
				}}
				fmt.Fprintf(d.Out(), "[discovery] Validating cluster-info from %s with the token's signature and the CA pin\n", endpoint)
				kc, err := d.Env().Discover(cfg, d.Timeout())
				if err != nil {
					return fmt.Errorf("token discovery at %s: %w", endpoint, err)
				}
				name, cluster, err := kubeconfigutil.GetClusterFromKubeConfig(kc)
				if err != nil {
					return fmt.Errorf("token discovery at %s: %w", endpoint, err)
				}
				clusterName, ca = name, cluster.CertificateAuthorityData
			}
			// The server cluster-info names may be an address this node cannot
			// reach; the node uses the one it was given, by a name the
			// certificate carries.
			bootstrap := kubeconfigutil.CreateWithToken(t.Server(), clusterName, TLSBootstrapUser, ca, d.Token())
			data, err := clientcmd.Write(*bootstrap)
			if err != nil {
				return err
			}
			h, p := d.Host(), d.Paths()
			if err := h.MkdirAll(p.PKIDir, 0o755); err != nil {
				return err
			}
			if err := h.WriteFile(p.CACert, ca, host.Public); err != nil {
				return err
			}
			if err := h.WriteFile(p.BootstrapKubeconfig, data, host.Private); err != nil {
				return err
			}
			d.SetBootstrapKubeconfig(bootstrap)
			fmt.Fprintf(d.Out(), "[discovery] Wrote %s for %s and %s\n", p.BootstrapKubeconfig, t.Server(), p.CACert)
			return nil
		},
	}
}

// BootstrapRESTConfig is how the node talks to the cluster with the
// bootstrap token: the written kubeconfig, or, in a dry run (no /etc/hosts
// line yet), the join address with the certificate checked against the name
// the node will use.
func BootstrapRESTConfig(d Data) (*rest.Config, error) {
	t := d.Target()
	if d.DryRun() {
		info := d.ClusterInfo()
		if info == nil {
			return nil, errNeedPreflight
		}
		return &rest.Config{
			Host:            "https://" + t.Endpoint,
			TLSClientConfig: rest.TLSClientConfig{CAData: info.CAData, ServerName: t.ServerName()},
			BearerToken:     d.Token(),
			Timeout:         clusterTimeout,
		}, nil
	}
	kc, err := d.BootstrapKubeconfig()
	if err != nil {
		return nil, err
	}
	return restConfig(kc)
}

func restConfig(kc *clientcmdapi.Config) (*rest.Config, error) {
	c, err := clientcmd.NewDefaultClientConfig(*kc, &clientcmd.ConfigOverrides{}).ClientConfig()
	if err != nil {
		return nil, err
	}
	c.Timeout = clusterTimeout
	return c, nil
}
