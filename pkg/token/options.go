package token

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/sets"
	bootstrapapi "k8s.io/cluster-bootstrap/token/api"
	bootstraputil "k8s.io/cluster-bootstrap/token/util"
	bootstraptokenv1 "k8s.io/kubernetes/cmd/kubeadm/app/apis/bootstraptoken/v1"
)

// DefaultCACertPath is where kubeadm keeps the cluster CA on control plane nodes.
const DefaultCACertPath = "/etc/kubernetes/pki/ca.crt"

// DefaultSignerWait bounds how long Create waits for the bootstrapsigner to
// sign cluster-info for a new token before concluding that none runs (the
// controller-manager's signer takes about 100 ms).
const DefaultSignerWait = 5 * time.Second

// CreateOptions are the inputs of Create, as the flags of "token create" give them.
type CreateOptions struct {
	// TTL is the token's lifetime; 0 means it never expires.
	TTL         time.Duration
	Description string
	// Usages defaults to kubeadm's (signing, authentication) when nil, Groups
	// to kubeadm's default-node-token group when nil and the token authenticates.
	Groups []string
	Usages []string

	// PrintJoinCommand asks for the "edgeadm join" command instead of the token.
	PrintJoinCommand bool
	// MasterPublicAddr is host or host:port; empty means "the address addon recorded".
	MasterPublicAddr string
	InstallPkgPath   string
	InstallPkgSHA256 string

	// CACertPath is --ca.cert. CACertPathExplicit says the user gave it, so
	// that a missing file is an error rather than a reason to look elsewhere.
	CACertPath         string
	CACertPathExplicit bool

	// SignerWait bounds the wait for the bootstrapsigner; 0 means DefaultSignerWait.
	SignerWait time.Duration
	// DryRun validates and reads the cluster but changes nothing.
	DryRun bool
}

// ValidationError is a mistake in the options: nothing was sent to the
// cluster. Commands turn it into a usage error.
type ValidationError struct{ Err error }

func (e *ValidationError) Error() string { return e.Err.Error() }
func (e *ValidationError) Unwrap() error { return e.Err }

func invalid(format string, a ...any) error {
	return &ValidationError{fmt.Errorf(format, a...)}
}

var sha256Hex = regexp.MustCompile(`^[0-9a-fA-F]{64}$`)

// Validate checks o without touching the cluster and fills in kubeadm's
// defaults. It returns every problem at once, joined.
func (o *CreateOptions) Validate() error {
	if o.Usages == nil {
		o.Usages = append([]string(nil), bootstraptokenv1.DefaultTokenUsages...)
	}
	o.Usages = trimAll(o.Usages)
	// kubeadm's default group goes only on a token that authenticates; an
	// explicit group on one that does not is an error below.
	if o.Groups == nil && sets.New(o.Usages...).Has("authentication") {
		o.Groups = append([]string(nil), bootstraptokenv1.DefaultTokenGroups...)
	}
	o.Groups = trimAll(o.Groups)
	var errs []error
	if o.TTL < 0 {
		errs = append(errs, invalid("--ttl %s: must be 0 (never expires) or positive", o.TTL))
	}
	if len(o.Usages) == 0 {
		errs = append(errs, invalid("--usages is empty: give one or more of %s", strings.Join(bootstrapapi.KnownTokenUsages, ",")))
	} else if err := bootstraputil.ValidateUsages(o.Usages); err != nil {
		errs = append(errs, invalid("--usages: %v", err))
	}
	usages := sets.New(o.Usages...)
	if len(o.Groups) > 0 && !usages.Has("authentication") {
		errs = append(errs, invalid("--groups needs --usages to include \"authentication\": groups apply only to a token used to authenticate"))
	}
	for _, g := range o.Groups {
		if err := bootstraputil.ValidateBootstrapGroupName(g); err != nil {
			errs = append(errs, invalid("--groups: %v", err))
		}
	}
	if o.PrintJoinCommand && !usages.Has("signing") {
		errs = append(errs, invalid("--print-join-command needs --usages to include \"signing\": edge nodes check cluster-info with the token's signature"))
	}
	if o.PrintJoinCommand && !usages.Has("authentication") {
		errs = append(errs, invalid("--print-join-command needs --usages to include \"authentication\": the kubelet of the edge node authenticates with the token to get its certificate"))
	}
	if o.MasterPublicAddr != "" {
		if _, err := ParseAddress(o.MasterPublicAddr); err != nil {
			errs = append(errs, invalid("--master-public-addr: %v", err))
		}
	}
	if strings.TrimSpace(o.InstallPkgPath) != o.InstallPkgPath {
		errs = append(errs, invalid("--install-pkg-path %q has leading or trailing spaces", o.InstallPkgPath))
	}
	if o.InstallPkgSHA256 != "" && !sha256Hex.MatchString(strings.TrimPrefix(o.InstallPkgSHA256, "sha256:")) {
		errs = append(errs, invalid("--install-pkg-sha256 %q: must be 64 hexadecimal digits", o.InstallPkgSHA256))
	}
	if !o.PrintJoinCommand {
		for _, f := range []struct{ name, v string }{
			{"--master-public-addr", o.MasterPublicAddr},
			{"--install-pkg-path", o.InstallPkgPath},
			{"--install-pkg-sha256", o.InstallPkgSHA256},
		} {
			if f.v != "" {
				errs = append(errs, invalid("%s only makes sense with --print-join-command", f.name))
			}
		}
	}
	if o.InstallPkgSHA256 != "" && o.InstallPkgPath == "" {
		errs = append(errs, invalid("--install-pkg-sha256 needs --install-pkg-path"))
	}
	if o.SignerWait < 0 {
		errs = append(errs, invalid("signer wait %s must not be negative", o.SignerWait))
	}
	if o.SignerWait == 0 {
		o.SignerWait = DefaultSignerWait
	}
	if len(errs) == 0 {
		return nil
	}
	return &ValidationError{errors.Join(errs...)}
}

func trimAll(in []string) []string {
	out := make([]string, 0, len(in))
	for _, s := range in {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

func (o *CreateOptions) has(usage string) bool {
	for _, u := range o.Usages {
		if u == usage {
			return true
		}
	}
	return false
}
