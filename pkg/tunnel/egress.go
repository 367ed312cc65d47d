package tunnel

import (
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	apiserverv1beta1 "k8s.io/apiserver/pkg/apis/apiserver/v1beta1"
	"sigs.k8s.io/yaml"
)

// EgressSelectorConfiguration is the API server's egress configuration: the
// "cluster" selection (logs, exec, attach, port-forward, node proxy,
// webhooks, aggregated APIs) goes to the proxy server over GRPC on
// udsName. "controlplane" and "etcd" are not named, so they stay direct.
func EgressSelectorConfiguration(udsName string) ([]byte, error) {
	if udsName == "" {
		return nil, fmt.Errorf("the proxy server's socket path is empty")
	}
	c := apiserverv1beta1.EgressSelectorConfiguration{
		TypeMeta: metav1.TypeMeta{APIVersion: apiserverv1beta1.SchemeGroupVersion.String(), Kind: "EgressSelectorConfiguration"},
		EgressSelections: []apiserverv1beta1.EgressSelection{{
			Name: "cluster",
			Connection: apiserverv1beta1.Connection{
				ProxyProtocol: apiserverv1beta1.ProtocolGRPC,
				// GRPC must use a unix socket: the API server's GRPC dialer
				// has no TLS to a TCP proxy server.
				Transport: &apiserverv1beta1.Transport{UDS: &apiserverv1beta1.UDSTransport{UDSName: udsName}},
			},
		}},
	}
	return yaml.Marshal(c)
}
