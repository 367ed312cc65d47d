package tunnel

import (
	"crypto"
	"crypto/x509"
	"fmt"
	"time"

	"k8s.io/client-go/tools/clientcmd"
	certutil "k8s.io/client-go/util/cert"
	"k8s.io/client-go/util/keyutil"
	kubeadmapi "k8s.io/kubernetes/cmd/kubeadm/app/apis/kubeadm"
	kubeconfigutil "k8s.io/kubernetes/cmd/kubeadm/app/util/kubeconfig"
	"k8s.io/kubernetes/cmd/kubeadm/app/util/pkiutil"
)

// ServerUser is the identity of the proxy server towards the API server; the
// tunnel's RBAC lets it create TokenReviews (system:auth-delegator) and
// nothing else.
const ServerUser = "system:konnectivity-server"

// ServerKubeconfig returns the proxy server's kubeconfig: a client
// certificate for ServerUser, signed by the cluster CA (caCert, caKey, as on
// a kubeadm master), valid until notAfter, and the API server at server
// (https://127.0.0.1:6443 on a master). The result holds a private key: the
// caller writes it 0600 in a 0700 folder, and never logs it.
func ServerKubeconfig(caCert *x509.Certificate, caKey crypto.Signer, server string, notAfter time.Time) ([]byte, error) {
	if caCert == nil || caKey == nil {
		return nil, fmt.Errorf("the cluster CA certificate and key are needed to sign the proxy server's certificate (on a kubeadm master: /etc/kubernetes/pki/ca.{crt,key})")
	}
	cert, key, err := pkiutil.NewCertAndKey(caCert, caKey, &pkiutil.CertConfig{
		Config: certutil.Config{
			CommonName: ServerUser,
			Usages:     []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		},
		NotAfter:            notAfter,
		EncryptionAlgorithm: kubeadmapi.EncryptionAlgorithmECDSAP256,
	})
	if err != nil {
		return nil, fmt.Errorf("sign the proxy server's client certificate: %w", err)
	}
	keyPEM, err := keyutil.MarshalPrivateKeyToPEM(key)
	if err != nil {
		return nil, fmt.Errorf("encode the proxy server's key: %w", err)
	}
	cfg := kubeconfigutil.CreateWithCerts(server, "kubernetes", ServerUser, pkiutil.EncodeCertPEM(caCert), keyPEM, pkiutil.EncodeCertPEM(cert))
	return clientcmd.Write(*cfg)
}
