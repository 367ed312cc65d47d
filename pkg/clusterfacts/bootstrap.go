package clusterfacts

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"slices"
	"sort"
	"strings"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	bootstrapapi "k8s.io/cluster-bootstrap/token/api"
)

// signerGrace is how long a signing token may lack its cluster-info
// signature before Gather concludes that no bootstrapsigner runs. The
// controller signs within a second when it runs.
const signerGrace = 60 * time.Second

func learnBootstrap(ctx context.Context, in Inputs, s *snap, f *Facts) {
	f.Kubeadm = s.kubeadmConfig != nil
	now := time.Now()

	f.BootstrapTokenAuth, f.BootstrapTokenAuthReason = Unknown,
		"no kube-apiserver pod and no bootstrap token to test with; `edgeadm token create` checks again"
	f.BootstrapSigner, f.BootstrapSignerReason = Unknown,
		"no kube-controller-manager pod to read and no bootstrap token to look for; `edgeadm token create` signs cluster-info itself if needed"

	if args, ok := podArgs(s.controlPlanePods, "kube-apiserver"); ok {
		v, set := flagValue(args, "enable-bootstrap-token-auth")
		if set && (v == "" || v == "true") {
			f.BootstrapTokenAuth, f.BootstrapTokenAuthReason = Yes, "kube-apiserver runs with --enable-bootstrap-token-auth"
		} else {
			f.BootstrapTokenAuth, f.BootstrapTokenAuthReason = No, "kube-apiserver runs without --enable-bootstrap-token-auth"
		}
	}
	if args, ok := podArgs(s.controlPlanePods, "kube-controller-manager"); ok {
		v, _ := flagValue(args, "controllers")
		ctrls := strings.Split(v, ",")
		if slices.Contains(ctrls, "bootstrapsigner") {
			f.BootstrapSigner, f.BootstrapSignerReason = Yes, "kube-controller-manager runs with --controllers including bootstrapsigner"
		} else {
			f.BootstrapSigner, f.BootstrapSignerReason = No, "kube-controller-manager runs without bootstrapsigner in --controllers (it is off by default)"
		}
	}

	tokens := validTokens(s.tokens, now)
	if f.BootstrapTokenAuth == Unknown {
		for _, t := range tokens {
			if string(t.Data[bootstrapapi.BootstrapTokenUsageAuthentication]) != "true" {
				continue
			}
			ok, err := tokenAuthenticates(ctx, in.RESTConfig, t)
			if err != nil {
				continue
			}
			if ok {
				f.BootstrapTokenAuth, f.BootstrapTokenAuthReason = Yes, "an existing bootstrap token authenticates"
			} else {
				f.BootstrapTokenAuth, f.BootstrapTokenAuthReason = No, "an existing, valid bootstrap token is refused: the apiserver lacks --enable-bootstrap-token-auth"
			}
			break
		}
	}
	if f.BootstrapSigner == Unknown && s.clusterInfo != nil {
		for _, t := range tokens {
			if string(t.Data[bootstrapapi.BootstrapTokenUsageSigningKey]) != "true" {
				continue
			}
			id := string(t.Data[bootstrapapi.BootstrapTokenIDKey])
			if _, signed := s.clusterInfo.Data[bootstrapapi.JWSSignatureKeyPrefix+id]; signed {
				f.BootstrapSigner, f.BootstrapSignerReason = Yes, "cluster-info carries a signature for an existing token"
				break
			}
			if now.Sub(t.CreationTimestamp.Time) > signerGrace {
				f.BootstrapSigner, f.BootstrapSignerReason = No, fmt.Sprintf("cluster-info has no signature for token %s, created %s ago", id, now.Sub(t.CreationTimestamp.Time).Round(time.Second))
			}
		}
	}
	if f.BootstrapTokenAuth == No {
		f.warnf("bootstrap-token authentication is off (%s): edge nodes cannot join until kube-apiserver runs with --enable-bootstrap-token-auth", f.BootstrapTokenAuthReason)
	}
}

// validTokens are the well-formed, unexpired bootstrap token Secrets.
func validTokens(secrets []corev1.Secret, now time.Time) []corev1.Secret {
	var out []corev1.Secret
	for _, s := range secrets {
		if s.Type != bootstrapapi.SecretTypeBootstrapToken || len(s.Data[bootstrapapi.BootstrapTokenIDKey]) == 0 {
			continue
		}
		if exp := string(s.Data[bootstrapapi.BootstrapTokenExpirationKey]); exp != "" {
			t, err := time.Parse(time.RFC3339, exp)
			if err != nil || !now.Before(t) {
				continue
			}
		}
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// tokenAuthenticates asks the apiserver who the token is. The token is
// used only in the request's Authorization header and never printed.
func tokenAuthenticates(ctx context.Context, base *rest.Config, t corev1.Secret) (bool, error) {
	cfg := rest.AnonymousClientConfig(base)
	cfg.BearerToken = string(t.Data[bootstrapapi.BootstrapTokenIDKey]) + "." + string(t.Data[bootstrapapi.BootstrapTokenSecretKey])
	cfg.Timeout = 10 * time.Second
	c, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return false, err
	}
	_, err = c.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
	switch {
	case err == nil, apierrors.IsForbidden(err):
		return true, nil // authenticated (forbidden means known but not allowed)
	case apierrors.IsUnauthorized(err):
		return false, nil
	}
	return false, err
}

// podArgs returns the command line of the first pod of the control plane
// component (labelled component=<name>, as kubeadm's static pods are).
func podArgs(pods []corev1.Pod, component string) ([]string, bool) {
	for _, p := range pods {
		if p.Labels["component"] != component {
			continue
		}
		for _, c := range p.Spec.Containers {
			if c.Name == component || len(p.Spec.Containers) == 1 {
				return append(append([]string{}, c.Command...), c.Args...), true
			}
		}
	}
	return nil, false
}

// flagValue finds --name=value or --name value in args.
func flagValue(args []string, name string) (string, bool) {
	for i, a := range args {
		if a == "--"+name {
			if i+1 < len(args) && !strings.HasPrefix(args[i+1], "-") {
				return args[i+1], true
			}
			return "", true
		}
		if v, ok := strings.CutPrefix(a, "--"+name+"="); ok {
			return v, true
		}
	}
	return "", false
}

func learnClusterInfo(s *snap, f *Facts) {
	if s.clusterInfo == nil {
		return
	}
	ci := &ClusterInfo{}
	f.ClusterInfo = ci
	for k := range s.clusterInfo.Data {
		if id, ok := strings.CutPrefix(k, bootstrapapi.JWSSignatureKeyPrefix); ok {
			ci.SignedTokenIDs = append(ci.SignedTokenIDs, id)
		}
	}
	sort.Strings(ci.SignedTokenIDs)
	cfg, err := clientcmd.Load([]byte(s.clusterInfo.Data[bootstrapapi.KubeConfigKey]))
	if err != nil || len(cfg.Clusters) == 0 {
		ci.Problem = "its kubeconfig does not parse or names no cluster"
		return
	}
	var cluster = cfg.Clusters[""]
	if cluster == nil {
		for _, c := range cfg.Clusters {
			cluster = c
			break
		}
	}
	ci.Server = cluster.Server
	if f.CA != nil && !SameCert(cluster.CertificateAuthorityData, f.CA) {
		ci.Problem = "its CA is not the cluster CA"
		return
	}
	u, err := url.Parse(cluster.Server)
	if err != nil || u.Hostname() == "" {
		ci.Problem = fmt.Sprintf("its server %q is not a URL", cluster.Server)
		return
	}
	if !f.CertCarries(u.Hostname()) {
		ci.Problem = fmt.Sprintf("its server host %s is not among the names the apiserver certificate carries", u.Hostname())
		return
	}
	ci.Usable = true
}

// CertCarries reports whether the apiserver's serving certificate is valid
// for host (a DNS name or an IP).
func (f *Facts) CertCarries(host string) bool {
	if ip := net.ParseIP(host); ip != nil {
		for _, s := range f.CertIPs {
			if net.ParseIP(s).Equal(ip) {
				return true
			}
		}
		return false
	}
	for _, n := range f.CertDNSNames {
		if strings.EqualFold(n, host) {
			return true
		}
	}
	return false
}
