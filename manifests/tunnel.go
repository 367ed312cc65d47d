package manifests

import (
	"bytes"
	"fmt"
	"net"
	"path"
	"text/template"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// The tunnel's templates (docs/tunnel.md). They are not in Templates: addon
// plans them only with --tunnel, after it has checked that it can point the
// API server at the proxy server (a tunnel without that would only hide the
// failure).
var (
	// TunnelTemplates are applied through the API, in this order.
	TunnelTemplates = []string{
		"templates/60-tunnel-rbac.yaml",
		"templates/61-tunnel-agent-edge.yaml",
		"templates/62-tunnel-agent-cloud.yaml",
	}
	// TunnelServerPodTemplate is the proxy server's static pod, written to
	// each master's manifest folder.
	TunnelServerPodTemplate = "templates/65-tunnel-server-pod.yaml"
)

// Konnectivity defaults: upstream's images and version.
const (
	DefaultKonnectivityImageRepository = "registry.k8s.io/kas-network-proxy"
	DefaultKonnectivityVersion         = "v0.36.0"
	// KonnectivityAudience is the token audience the server accepts.
	KonnectivityAudience = "system:konnectivity-server"
	// KonnectivityServerUser is the user of the server's client certificate.
	KonnectivityServerUser = "system:konnectivity-server"
	DefaultAgentPort       = 8132
)

// TunnelValues are what the tunnel templates are rendered from.
type TunnelValues struct {
	Values
	// KonnectivityImageRepository holds proxy-server and proxy-agent
	// (addon's --image-repository when given).
	KonnectivityImageRepository string
	KonnectivityVersion         string
	// EdgeServerHost is the name edge agents dial: the one join maps to the
	// API server in /etc/hosts (kubernetes.default for an IP join), which the
	// API server's certificate carries.
	EdgeServerHost string
	// CloudServerHost is what the cloud agent dials: an address of the
	// masters that the API server's certificate carries.
	CloudServerHost    string
	CloudAgentReplicas int
	AgentPort          int
	// ServerCount is the number of masters (proxy servers).
	ServerCount int
	Audience    string
	ServerUser  string
	// Paths on the masters.
	UDSDir, UDSName, PKIDir, ClusterCert, ClusterKey, ServerKubeconfig string
}

// WithDefaults fills what was not set.
func (v TunnelValues) WithDefaults() TunnelValues {
	v.Values = v.Values.WithDefaults()
	def := func(s *string, d string) {
		if *s == "" {
			*s = d
		}
	}
	def(&v.KonnectivityImageRepository, DefaultKonnectivityImageRepository)
	def(&v.KonnectivityVersion, DefaultKonnectivityVersion)
	if v.EdgeServerHost == "" {
		// Edge hosts reach the API server as join named it.
		host, _, err := net.SplitHostPort(v.MasterPublicAddr)
		if err != nil || net.ParseIP(host) != nil {
			host = "kubernetes.default"
		}
		v.EdgeServerHost = host
	}
	if v.CloudServerHost == "" {
		host, _, _ := net.SplitHostPort(v.MasterPublicAddr)
		v.CloudServerHost = host
	}
	if v.CloudAgentReplicas == 0 {
		v.CloudAgentReplicas = 1
	}
	if v.AgentPort == 0 {
		v.AgentPort = DefaultAgentPort
	}
	if v.ServerCount == 0 {
		v.ServerCount = 1
	}
	def(&v.Audience, KonnectivityAudience)
	def(&v.ServerUser, KonnectivityServerUser)
	def(&v.UDSDir, "/etc/kubernetes/konnectivity-server")
	def(&v.UDSName, path.Join(v.UDSDir, "konnectivity-server.socket"))
	def(&v.PKIDir, "/etc/kubernetes/pki")
	def(&v.ClusterCert, path.Join(v.PKIDir, "apiserver.crt"))
	def(&v.ClusterKey, path.Join(v.PKIDir, "apiserver.key"))
	def(&v.ServerKubeconfig, "/etc/kubernetes/edgeadm-konnectivity/konnectivity-server.conf")
	return v
}

// RenderTunnel renders the tunnel's API objects (RBAC and agents).
func RenderTunnel(v TunnelValues) ([]*unstructured.Unstructured, error) {
	v = v.WithDefaults()
	if v.CloudServerHost == "" {
		return nil, fmt.Errorf("the cloud agent needs an address of the masters: set the public address (host:port)")
	}
	var out []*unstructured.Unstructured
	for _, name := range TunnelTemplates {
		b, err := renderFile(name, v)
		if err != nil {
			return nil, err
		}
		objs, err := decode(b)
		if err != nil {
			return nil, fmt.Errorf("decode %s: %w", name, err)
		}
		for _, o := range objs {
			if o.GetLabels()["app.kubernetes.io/managed-by"] != "edgeadm" {
				return nil, fmt.Errorf("%s: %s %s lacks the label app.kubernetes.io/managed-by=edgeadm", name, o.GetKind(), o.GetName())
			}
		}
		out = append(out, objs...)
	}
	return out, nil
}

// TunnelServerPod renders the proxy server's static pod manifest (YAML).
func TunnelServerPod(v TunnelValues) ([]byte, error) {
	return renderFile(TunnelServerPodTemplate, v.WithDefaults())
}

func renderFile(name string, v any) ([]byte, error) {
	raw, err := files.ReadFile(name)
	if err != nil {
		return nil, err
	}
	t, err := template.New(name).Funcs(funcs).Option("missingkey=error").Parse(string(raw))
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w", name, err)
	}
	var buf bytes.Buffer
	if err := t.Execute(&buf, v); err != nil {
		return nil, fmt.Errorf("render %s: %w", name, err)
	}
	return buf.Bytes(), nil
}
