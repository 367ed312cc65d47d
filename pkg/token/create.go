package token

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	bootstrapapi "k8s.io/cluster-bootstrap/token/api"
	bootstraputil "k8s.io/cluster-bootstrap/token/util"
	bootstrapsecretutil "k8s.io/cluster-bootstrap/util/secrets"
	"k8s.io/klog/v2"
	bootstraptokenv1 "k8s.io/kubernetes/cmd/kubeadm/app/apis/bootstraptoken/v1"
)

// Cluster is how the token functions reach the cluster.
type Cluster struct {
	Client kubernetes.Interface
	// REST is the client configuration Client was made from: its CA and
	// server URL are facts Create uses. It may be nil in tests.
	REST *rest.Config
	// Warn receives warnings meant for the user (the command's stderr).
	Warn io.Writer
}

func (c Cluster) warnf(format string, a ...any) {
	if c.Warn != nil {
		fmt.Fprintf(c.Warn, "warning: "+format+"\n", a...)
	}
}

// Result is what Create made.
type Result struct {
	Token Token
	// Join is set with PrintJoinCommand.
	Join *JoinCommand
	// Expires is the token's expiry; nil when it never expires.
	Expires *time.Time
	// SignedByEdgeadm says edgeadm signed cluster-info itself, for want of a
	// bootstrapsigner.
	SignedByEdgeadm bool
	// Secret is the token's Secret (what was or, with DryRun, would be created).
	// It holds the token: never print or log it.
	Secret *corev1.Secret `json:"-"`
}

// Create makes a bootstrap token as "kubeadm token create" does and, with
// PrintJoinCommand, the join command that carries it. Everything is checked
// before anything is written: flags, cluster-info, address, CA. When no
// bootstrapsigner signs cluster-info for the new token within SignerWait,
// Create signs it itself. On failure after the Secret exists, what was made is
// removed again.
func Create(ctx context.Context, c Cluster, o CreateOptions) (*Result, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	signing := o.has("signing")

	// Read and check everything first.
	var clusterInfo *corev1.ConfigMap
	if signing {
		var err error
		if clusterInfo, err = getClusterInfo(ctx, c.Client); err != nil {
			return nil, err
		}
	}
	rec, err := readRecord(ctx, c.Client)
	if err != nil {
		return nil, err
	}
	var join *JoinCommand
	if o.PrintJoinCommand {
		if join, err = planJoin(ctx, c, o, rec, clusterInfo); err != nil {
			return nil, err
		}
	}

	t, err := Generate()
	if err != nil {
		return nil, err
	}
	DefaultLogFilter.Register(t)
	bt := bootstraptokenv1.BootstrapToken{
		Token:       t.kubeadm(),
		Description: o.Description,
		TTL:         &metav1.Duration{Duration: o.TTL},
		Usages:      o.Usages,
		Groups:      o.Groups,
	}
	secret := bootstraptokenv1.BootstrapTokenToSecret(&bt)
	res := &Result{Token: t, Join: join, Secret: secret}
	if join != nil {
		join.Token = t
	}
	if exp := bootstrapsecretutil.GetData(secret, "expiration"); exp != "" {
		if when, err := time.Parse(time.RFC3339, exp); err == nil {
			res.Expires = &when
		}
	}
	if o.TTL == 0 {
		c.warnf("--ttl 0: token %q never expires; delete it with \"edgeadm token delete %s\" when it is no longer needed", t.ID(), t.ID())
	}
	if o.DryRun {
		klog.V(1).Infof("[token] dry run: would create Secret %s/%s", secret.Namespace, secret.Name)
		return res, nil
	}

	pruneSignatures(ctx, c, rec)

	if _, err := c.Client.CoreV1().Secrets(metav1.NamespaceSystem).Create(ctx, secret, metav1.CreateOptions{}); err != nil {
		if apierrors.IsAlreadyExists(err) {
			return nil, fmt.Errorf("a bootstrap token with ID %q already exists (a one in two billion chance): run the command again", t.ID())
		}
		return nil, fmt.Errorf("create the bootstrap token Secret %s/%s: %w", metav1.NamespaceSystem, secret.Name, err)
	}
	klog.V(1).Infof("[token] created bootstrap token %q", t.ID())

	if signing {
		signed, err := ensureSigned(ctx, c, o, clusterInfo, rec, t, res.Expires)
		if err != nil {
			return nil, errors.Join(err, rollback(ctx, c, t))
		}
		res.SignedByEdgeadm = signed
	}
	return res, nil
}

// ensureSigned waits for the bootstrapsigner to sign cluster-info for t and
// signs it itself when none does. It reports whether edgeadm signed.
func ensureSigned(ctx context.Context, c Cluster, o CreateOptions, clusterInfo *corev1.ConfigMap, rec *record, t Token, expires *time.Time) (bool, error) {
	start := time.Now()
	bound := o.SignerWait
	if signerSeen(clusterInfo, rec) {
		// Someone else signed cluster-info before: a bootstrapsigner runs, or
		// ran. Give it time (it may be busy or just restarting) rather than
		// sign in its place.
		bound *= patienceWithSigner
	}
	found, err := waitForSignature(ctx, c.Client, t.ID(), bound)
	if err != nil {
		return false, err
	}
	if found {
		klog.V(1).Infof("[token] the bootstrapsigner signed cluster-info for token %q after %s", t.ID(), time.Since(start).Round(time.Millisecond))
		return false, nil
	}
	if expires != nil && !time.Now().Before(*expires) {
		c.warnf("token %q expired before cluster-info was signed for it; it cannot be used to join", t.ID())
		return false, nil
	}
	// The signature must cover cluster-info as it is now.
	cm, err := getClusterInfo(ctx, c.Client)
	if err != nil {
		return false, err
	}
	if cm.Data[signatureKey(t.ID())] != "" {
		return false, nil
	}
	if _, err := sign(ctx, c.Client, cm, t); err != nil {
		return false, err
	}
	c.warnf("no bootstrapsigner signed kube-public/cluster-info for token %q within %s, so edgeadm signed it; "+
		"\"edgeadm token delete %s\" removes that signature. Nothing removes it when the token expires: "+
		"run kube-controller-manager with --controllers=*,bootstrapsigner,tokencleaner so signatures follow the tokens",
		t.ID(), bound, t.ID())
	return true, nil
}

// patienceWithSigner multiplies the signer wait when there is evidence that
// a bootstrapsigner runs.
const patienceWithSigner = 6

// signerSeen reports whether cluster-info carries a signature that edgeadm
// did not add: the work of a bootstrapsigner.
func signerSeen(clusterInfo *corev1.ConfigMap, rec *record) bool {
	for k := range clusterInfo.Data {
		if id, ok := strings.CutPrefix(k, bootstrapapi.JWSSignatureKeyPrefix); ok && rec.signed[id] == "" {
			return true
		}
	}
	return false
}

// rollback removes what a failed Create made.
func rollback(ctx context.Context, c Cluster, t Token) error {
	var errs []error
	rec, err := readRecord(ctx, c.Client)
	if err == nil && rec.signed[t.ID()] != "" {
		_, err = removeSignature(ctx, c.Client, t.ID(), rec.signed[t.ID()])
	}
	errs = append(errs, err)
	err = c.Client.CoreV1().Secrets(metav1.NamespaceSystem).Delete(ctx, t.SecretName(), metav1.DeleteOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		errs = append(errs, fmt.Errorf("remove the bootstrap token %q again: %w: delete it with \"edgeadm token delete %s\"", t.ID(), err, t.ID()))
	}
	return errors.Join(errs...)
}

// planJoin works out the join command's address and CA pins.
func planJoin(ctx context.Context, c Cluster, o CreateOptions, rec *record, clusterInfo *corev1.ConfigMap) (*JoinCommand, error) {
	var addr Address
	var err error
	switch {
	case o.MasterPublicAddr != "":
		addr, err = ParseAddress(o.MasterPublicAddr)
		if err != nil {
			return nil, &ValidationError{fmt.Errorf("--master-public-addr: %w", err)}
		}
	case rec.config.MasterPublicAddr != "":
		addr, err = ParseAddress(rec.config.MasterPublicAddr)
		if err != nil {
			return nil, fmt.Errorf("the address recorded by edgeadm addon (%s/%s) is unusable: %w: pass --master-public-addr", "kube-system", "edgeadm", err)
		}
	default:
		return nil, errors.New("no address for edge nodes to dial is known: pass --master-public-addr host[:port] " +
			"(the public IP or domain of the API server), or run edgeadm addon edge-apps --master-public-addr to record one")
	}
	if addr.Port == 0 {
		server := ""
		if c.REST != nil {
			server = c.REST.Host
		}
		port, from, err := portSource{client: c.Client, recorded: rec.config.APIServerPort, serverURL: server}.port(ctx)
		if err != nil {
			return nil, err
		}
		klog.V(1).Infof("[token] API server port %d, from %s", port, from)
		addr.Port = port
	}

	fileSrc, err := caFromFile(o.CACertPath, o.CACertPathExplicit)
	if err != nil {
		return nil, err
	}
	var kcSrc caSource
	if c.REST != nil {
		if kcSrc, err = caFromRESTConfig(c.REST); err != nil {
			return nil, err
		}
	}
	var ciSrc caSource
	if clusterInfo != nil {
		if ciSrc, err = caFromClusterInfo(clusterInfo.Data["kubeconfig"]); err != nil {
			return nil, err
		}
	}
	pins, err := caPins(fileSrc, kcSrc, ciSrc)
	if err != nil {
		return nil, err
	}
	return &JoinCommand{
		Address:          addr,
		CACertHashes:     pins,
		InstallPkgPath:   o.InstallPkgPath,
		InstallPkgSHA256: o.InstallPkgSHA256,
	}, nil
}

// pruneSignatures removes the signatures edgeadm added for tokens that are
// gone or expired: without a bootstrapsigner nothing else would. Failures
// only warn; they do not stop the command.
func pruneSignatures(ctx context.Context, c Cluster, rec *record) {
	for id, sig := range rec.signed {
		s, err := c.Client.CoreV1().Secrets(metav1.NamespaceSystem).Get(ctx, bootstraputil.BootstrapTokenSecretName(id), metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
		case err != nil:
			klog.V(1).Infof("[token] cannot check token %q for pruning: %v", id, err)
			continue
		case !bootstrapsecretutil.HasExpired(s, time.Now()):
			continue
		}
		if _, err := removeSignature(ctx, c.Client, id, sig); err != nil {
			c.warnf("could not remove edgeadm's cluster-info signature for the gone or expired token %q: %v", id, err)
			continue
		}
		klog.V(1).Infof("[token] removed edgeadm's cluster-info signature for the gone or expired token %q", id)
	}
}
