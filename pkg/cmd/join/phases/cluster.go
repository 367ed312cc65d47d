package phases

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	certutil "k8s.io/client-go/util/cert"
	bootstrapapi "k8s.io/cluster-bootstrap/token/api"
	tokenjws "k8s.io/cluster-bootstrap/token/jws"
	bootstraptokenv1 "k8s.io/kubernetes/cmd/kubeadm/app/apis/bootstraptoken/v1"
	"k8s.io/kubernetes/cmd/kubeadm/app/constants"
	kubeconfigutil "k8s.io/kubernetes/cmd/kubeadm/app/util/kubeconfig"
	"k8s.io/kubernetes/cmd/kubeadm/app/util/pubkeypin"
	"sigs.k8s.io/yaml"

	"github.com/edgeadm/edgeadm/pkg/preflight"
)

// clusterTimeout bounds each request preflight makes to the cluster.
const clusterTimeout = 15 * time.Second

// addonHint is the fix when the cluster lacks what a kubeadm-style join reads.
const addonHint = `on a master, run "edgeadm addon edge-apps" (it prepares cluster-info, kubelet-config and the RBAC a join needs)`

// clusterState carries what one cluster check learned to the next; a check
// whose predecessor failed reports nothing more.
type clusterState struct {
	failed bool
	certs  []*x509.Certificate // the API server's chain, leaf first
	info   ClusterInfo
}

// clusterChecks look at the API server as this node will: reachable at the
// address, with a certificate for the name the node will use, signed by the
// CA the token vouches for and the hash pins, and with a kubelet
// configuration this host can run. Nothing is written to the cluster.
func clusterChecks(d Data) []preflight.Check {
	s := &clusterState{}
	step := func(name string, f func(ctx context.Context) error) preflight.Check {
		return check(name, func(ctx context.Context) ([]error, []error) {
			if s.failed {
				return nil, nil
			}
			ctx, cancel := context.WithTimeout(ctx, clusterTimeout)
			defer cancel()
			if err := f(ctx); err != nil {
				s.failed = true
				return nil, one(err)
			}
			return nil, nil
		})
	}
	return []preflight.Check{
		step("APIServerReachable", s.reachable(d)),
		step("APIServerCertificate", s.certificate(d)),
		step("Discovery", s.discovery(d)),
		step("KubeletConfig", s.kubeletConfig(d)),
	}
}

func (s *clusterState) reachable(d Data) func(context.Context) error {
	return func(ctx context.Context) error {
		t := d.Target()
		// No trust yet: this only reads the certificate the server presents.
		conn, err := d.Env().DialTLS(ctx, t.Endpoint, &tls.Config{InsecureSkipVerify: true, ServerName: t.ServerName()}) //nolint:gosec // read-only look at the certificate
		if err != nil {
			return errorf("cannot reach the API server at %s over TLS (%v): check the address and port (\"edgeadm token create --print-join-command\" on a master prints them) and that TCP %s is open from this host to it",
				t.Endpoint, err, t.Port)
		}
		defer conn.Close()
		s.certs = conn.ConnectionState().PeerCertificates
		if len(s.certs) == 0 {
			return errorf("the API server at %s presented no certificate", t.Endpoint)
		}
		return nil
	}
}

func sans(c *x509.Certificate) string {
	var names []string
	names = append(names, c.DNSNames...)
	for _, ip := range c.IPAddresses {
		names = append(names, ip.String())
	}
	if len(names) == 0 {
		return "no names"
	}
	return strings.Join(names, ", ")
}

func (s *clusterState) certificate(d Data) func(context.Context) error {
	return func(context.Context) error {
		t := d.Target()
		leaf := s.certs[0]
		if leaf.VerifyHostname(t.ServerName()) == nil {
			return nil
		}
		if t.IsIP {
			return errorf("the API server's certificate does not carry %s (it has: %s). An IP join reaches the API server as %s through /etc/hosts, "+
				"so the certificate must carry that name: join by a domain name the certificate carries (edgeadm join <domain>:%s ...), "+
				"or add %s to the certificate's names (kubeadm: apiServer.certSANs, then renew the apiserver certificate)",
				KubernetesDefault, sans(leaf), KubernetesDefault, t.Port, KubernetesDefault)
		}
		fix := "add " + t.Host + " to the certificate's names (kubeadm: apiServer.certSANs, then renew the apiserver certificate)"
		if leaf.VerifyHostname(KubernetesDefault) == nil {
			fix += ", or join by the API server's IP address instead (the node then uses " + KubernetesDefault + ", which the certificate carries)"
		}
		return errorf("the API server's certificate does not carry %s (it has: %s): a domain join verifies the certificate against the domain; %s",
			t.Host, sans(leaf), fix)
	}
}

func (s *clusterState) discovery(d Data) func(context.Context) error {
	return func(ctx context.Context) error {
		t := d.Target()
		client, err := d.Env().NewClient(&rest.Config{
			Host:            "https://" + t.Endpoint,
			TLSClientConfig: rest.TLSClientConfig{Insecure: true, ServerName: t.ServerName()},
			Timeout:         clusterTimeout,
		})
		if err != nil {
			return err
		}
		cm, err := client.CoreV1().ConfigMaps(metav1.NamespacePublic).Get(ctx, bootstrapapi.ConfigMapClusterInfo, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err), apierrors.IsForbidden(err), apierrors.IsUnauthorized(err):
			return errorf("the cluster has no kube-public/%s readable without credentials (%v): %s", bootstrapapi.ConfigMapClusterInfo, apierrors.ReasonForError(err), addonHint)
		case err != nil:
			return errorf("cannot read kube-public/%s from %s: %v", bootstrapapi.ConfigMapClusterInfo, t.Endpoint, err)
		}
		tok, err := bootstraptokenv1.NewBootstrapTokenString(d.Token())
		if err != nil {
			return errorf("the token is malformed") // validated before; never print it
		}
		kubeconfig := cm.Data[bootstrapapi.KubeConfigKey]
		if kubeconfig == "" {
			return errorf("kube-public/%s has no %q: %s", bootstrapapi.ConfigMapClusterInfo, bootstrapapi.KubeConfigKey, addonHint)
		}
		sig, ok := cm.Data[bootstrapapi.JWSSignatureKeyPrefix+tok.ID]
		if !ok {
			return errorf("the cluster does not know token %q, or it has expired: create a new one on a master with \"edgeadm token create --print-join-command\" "+
				"(if new tokens never work, kube-controller-manager must run with --controllers=*,bootstrapsigner,tokencleaner)", tok.ID)
		}
		if !tokenjws.DetachedTokenIsValid(sig, kubeconfig, tok.ID, tok.Secret) {
			return errorf("the secret part of token %q is wrong (cluster-info's signature does not verify with it): copy the whole token again", tok.ID)
		}
		cfg, err := clientcmd.Load([]byte(kubeconfig))
		if err != nil {
			return errorf("kube-public/%s holds a kubeconfig that does not parse: %v", bootstrapapi.ConfigMapClusterInfo, err)
		}
		name, cluster, err := kubeconfigutil.GetClusterFromKubeConfig(cfg)
		if err != nil {
			return errorf("kube-public/%s: %v", bootstrapapi.ConfigMapClusterInfo, err)
		}
		cas, err := certutil.ParseCertsPEM(cluster.CertificateAuthorityData)
		if err != nil {
			return errorf("the CA in kube-public/%s does not parse: %v", bootstrapapi.ConfigMapClusterInfo, err)
		}
		pins := pubkeypin.NewSet()
		if err := pins.Allow(d.CACertHashes()...); err != nil {
			return err
		}
		if !pins.Empty() {
			if err := pins.CheckAny(cas); err != nil {
				return errorf("the cluster's CA does not match --discovery-token-ca-cert-hash: check the hash (\"edgeadm token create --print-join-command\" on a master prints the right one); " +
					"if it is right, something between this host and the cluster is not the cluster")
			}
		}
		roots := x509.NewCertPool()
		for _, ca := range cas {
			roots.AddCert(ca)
		}
		inter := x509.NewCertPool()
		for _, c := range s.certs[1:] {
			inter.AddCert(c)
		}
		if _, err := s.certs[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, DNSName: t.ServerName()}); err != nil {
			return errorf("the API server at %s presents a certificate the cluster's CA does not vouch for as %s (%v): the address may lead to another server", t.Endpoint, t.ServerName(), err)
		}
		s.info.ClusterName = name
		s.info.CAData = cluster.CertificateAuthorityData
		return nil
	}
}

func (s *clusterState) kubeletConfig(d Data) func(context.Context) error {
	return func(ctx context.Context) error {
		t := d.Target()
		client, err := d.Env().NewClient(&rest.Config{
			Host:            "https://" + t.Endpoint,
			TLSClientConfig: rest.TLSClientConfig{CAData: s.info.CAData, ServerName: t.ServerName()},
			BearerToken:     d.Token(),
			Timeout:         clusterTimeout,
		})
		if err != nil {
			return err
		}
		cm, err := client.CoreV1().ConfigMaps(metav1.NamespaceSystem).Get(ctx, constants.KubeletBaseConfigurationConfigMap, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err), apierrors.IsForbidden(err):
			return errorf("the bootstrap token cannot read kube-system/%s (%v): %s", constants.KubeletBaseConfigurationConfigMap, apierrors.ReasonForError(err), addonHint)
		case apierrors.IsUnauthorized(err):
			return errorf("the cluster refuses the token (%v): create a new one with \"edgeadm token create --print-join-command\"", apierrors.ReasonForError(err))
		case err != nil:
			return errorf("cannot read kube-system/%s: %v", constants.KubeletBaseConfigurationConfigMap, err)
		}
		doc := cm.Data[constants.KubeletBaseConfigurationConfigMapKey]
		warnings, err := KubeletConfigFits(d, []byte(doc))
		if err != nil {
			return err
		}
		for _, w := range warnings {
			d.Warn("CgroupsV1", w)
		}
		s.info.KubeletConfig = []byte(doc)
		info := s.info
		d.SetClusterInfo(&info)
		return nil
	}
}

// KubeletConfigFits checks that the cluster's KubeletConfiguration lets a
// kubelet start on this host (with what NodeKubeletConfig adapts), and
// returns what the user should know.
func KubeletConfigFits(d Data, doc []byte) (warnings []string, err error) {
	var cfg map[string]any
	if err := yaml.Unmarshal(doc, &cfg); err != nil || cfg == nil {
		return nil, errorf("kube-system/%s holds no KubeletConfiguration under %q: %s", constants.KubeletBaseConfigurationConfigMap, constants.KubeletBaseConfigurationConfigMapKey, addonHint)
	}
	if kind, _ := cfg["kind"].(string); kind != "KubeletConfiguration" {
		return nil, errorf("kube-system/%s holds a %q, not a KubeletConfiguration", constants.KubeletBaseConfigurationConfigMap, kind)
	}
	if cgroupV1(d.Host()) {
		switch v, ok := cfg["failCgroupV1"].(bool); {
		case ok && v:
			return nil, errorf("this host uses cgroup v1, and the cluster's kubelet configuration sets failCgroupV1: true, so the kubelet would refuse to start: " +
				"boot this host with cgroup v2 (systemd.unified_cgroup_hierarchy=1), or drop failCgroupV1 from kube-system/kubelet-config")
		case !ok:
			warnings = append(warnings, "this host uses cgroup v1, which the kubelet supports only in maintenance mode: join sets failCgroupV1: false in this node's kubelet configuration; move the host to cgroup v2 when you can")
		}
	}
	if swapOn(d.Host()) {
		if v, ok := cfg["failSwapOn"].(bool); !ok || v {
			return nil, errorf("swap is on, and the cluster's kubelet configuration does not set failSwapOn: false: turn swap off (swapoff -a, and remove it from /etc/fstab)")
		}
	}
	return warnings, nil
}
