package testenv

import (
	"fmt"
	"os"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// kubeconfigSpec is one kubeconfig with an embedded client certificate.
type kubeconfigSpec struct {
	// Server is the URL to dial.
	Server string
	// TLSServerName, when set, is the name the server certificate is verified
	// against instead of the host in Server.
	TLSServerName string
	// User is the name of the user entry; the identity is the certificate's.
	User string
	// CertBase names the client certificate and key in the PKI.
	CertBase string
}

// writeKubeconfig writes a kubeconfig with the CA, client certificate and key
// embedded, mode 0600, readable by kubectl and client-go alike.
func writeKubeconfig(path string, p *PKI, s kubeconfigSpec) error {
	cert, err := os.ReadFile(p.CertPath(s.CertBase))
	if err != nil {
		return fmt.Errorf("kubeconfig %s: %w", path, err)
	}
	key, err := os.ReadFile(p.KeyPath(s.CertBase))
	if err != nil {
		return fmt.Errorf("kubeconfig %s: %w", path, err)
	}
	const cluster = "kubernetes"
	ctxName := s.User + "@" + cluster
	cfg := clientcmdapi.Config{
		Clusters: map[string]*clientcmdapi.Cluster{cluster: {
			Server:                   s.Server,
			TLSServerName:            s.TLSServerName,
			CertificateAuthorityData: p.CAPEM(),
		}},
		AuthInfos: map[string]*clientcmdapi.AuthInfo{s.User: {
			ClientCertificateData: cert,
			ClientKeyData:         key,
		}},
		Contexts:       map[string]*clientcmdapi.Context{ctxName: {Cluster: cluster, AuthInfo: s.User}},
		CurrentContext: ctxName,
	}
	data, err := clientcmd.Write(cfg)
	if err != nil {
		return fmt.Errorf("kubeconfig %s: %w", path, err)
	}
	return writeSecretFile(path, data)
}
