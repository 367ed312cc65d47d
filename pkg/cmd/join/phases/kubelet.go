package phases

import (
	"errors"
	"fmt"
	"io/fs"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/kubernetes/cmd/kubeadm/app/cmd/phases/workflow"

	"github.com/edgeadm/edgeadm/pkg/host"
)

// NewKubeletStartPhase enables and starts the kubelet, which then makes its
// TLS bootstrap with the bootstrap kubeconfig.
func NewKubeletStartPhase() workflow.Phase {
	return workflow.Phase{
		Name:         "kubelet-start",
		Short:        "Enable and start the kubelet",
		InheritFlags: Flags,
		RunIf:        notJoined,
		Run: func(c workflow.RunData) error {
			d := c.(Data)
			h, ctx := d.Host(), d.Context()
			for _, dir := range kubeletDirs(d.Paths()) {
				if err := h.Residue(ctx, host.Residue{Kind: host.ResidueDir, Path: dir}); err != nil {
					return err
				}
			}
			if err := h.Systemctl(ctx, host.Enable, "kubelet.service"); err != nil {
				return err
			}
			if err := h.Systemctl(ctx, host.Start, "kubelet.service"); err != nil {
				return fmt.Errorf("%w (see: journalctl -u kubelet)", err)
			}
			fmt.Fprintln(d.Out(), "[kubelet-start] The kubelet is starting")
			return nil
		},
	}
}

// NewTLSBootstrapPhase waits, bounded, for the kubelet to finish its TLS
// bootstrap: its CSR approved and signed, its kubeconfig written.
func NewTLSBootstrapPhase() workflow.Phase {
	return workflow.Phase{
		Name:         "tls-bootstrap",
		Short:        "Wait for the kubelet's TLS bootstrap (CSR signed, /etc/kubernetes/kubelet.conf written)",
		InheritFlags: Flags,
		RunIf:        notJoined,
		Run: func(c workflow.RunData) error {
			d := c.(Data)
			p := d.Paths()
			if d.DryRun() {
				fmt.Fprintf(d.Out(), "[tls-bootstrap] Would wait up to %s for the kubelet to write %s\n", d.Timeout(), p.KubeletKubeconfig)
				return nil
			}
			fmt.Fprintf(d.Out(), "[tls-bootstrap] Waiting up to %s for the kubelet's certificate\n", d.Timeout())
			var notYet error
			err := waitFor(d.Context(), d.Env().PollInterval, d.Timeout(), func() (bool, error) {
				if _, err := d.Host().Lstat(p.KubeletKubeconfig); err == nil {
					// The kubelet may write kubelet.conf a moment before the
					// certificate file it names: done only when the node's
					// credentials load in full.
					if _, notYet = NodeClient(d); notYet == nil {
						return true, nil
					}
				} else if !errors.Is(err, fs.ErrNotExist) {
					return false, err
				}
				s, err := d.Host().UnitState(d.Context(), "kubelet.service")
				if err == nil && s.Active == "failed" {
					return false, errors.New("kubelet.service failed (see: journalctl -u kubelet)")
				}
				return false, nil
			})
			if err != nil {
				if notYet != nil {
					err = fmt.Errorf("%w (last: %v)", err, notYet)
				}
				return fmt.Errorf("the kubelet did not finish its TLS bootstrap: %w; see \"journalctl -u kubelet\". "+
					"Its certificate request must be approved: %s", err, addonHint)
			}
			fmt.Fprintf(d.Out(), "[tls-bootstrap] The kubelet has its certificate and wrote %s\n", p.KubeletKubeconfig)
			return nil
		},
	}
}

// NodeClient talks to the cluster as the node itself, with the credentials
// the kubelet got from its TLS bootstrap.
func NodeClient(d Data) (kubernetes.Interface, error) {
	p := d.Paths()
	data, err := d.Host().ReadFile(p.KubeletKubeconfig)
	if err != nil {
		return nil, fmt.Errorf("the node's credentials: %w", err)
	}
	kc, err := clientcmd.Load(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p.KubeletKubeconfig, err)
	}
	// The kubelet refers to its rotating certificate by path: read it
	// through the host, so that a test root works too.
	for _, ai := range kc.AuthInfos {
		if ai.ClientCertificate != "" {
			if ai.ClientCertificateData, err = d.Host().ReadFile(ai.ClientCertificate); err != nil {
				return nil, err
			}
			ai.ClientCertificate = ""
		}
		if ai.ClientKey != "" {
			if ai.ClientKeyData, err = d.Host().ReadFile(ai.ClientKey); err != nil {
				return nil, err
			}
			ai.ClientKey = ""
		}
	}
	for _, cl := range kc.Clusters {
		if cl.CertificateAuthority != "" {
			if cl.CertificateAuthorityData, err = d.Host().ReadFile(cl.CertificateAuthority); err != nil {
				return nil, err
			}
			cl.CertificateAuthority = ""
		}
	}
	rc, err := clientcmd.NewDefaultClientConfig(*kc, &clientcmd.ConfigOverrides{}).ClientConfig()
	if err != nil {
		return nil, err
	}
	return d.Env().NewClient(rc)
}
