package token

import (
	"errors"
	"fmt"

	bootstrapapi "k8s.io/cluster-bootstrap/token/api"
	bootstraputil "k8s.io/cluster-bootstrap/token/util"
	bootstraptokenv1 "k8s.io/kubernetes/cmd/kubeadm/app/apis/bootstraptoken/v1"
)

// Redacted replaces the secret half of a token wherever one is printed.
const Redacted = "<redacted>"

// Token is a bootstrap token "<id>.<secret>" that cannot be printed by
// accident: every formatting path (%v, %s, %q, %+v, %#v, JSON, text, logr)
// shows "<id>.<redacted>". Reveal is the one way to get the whole value, for
// the places the user asked for it.
//
// The secret sits behind a pointer so that even a struct holding a Token in
// an unexported field, printed with %+v, shows an address and not the secret
// (fmt does not call methods on unexported fields).
type Token struct {
	id     string
	secret *secretValue
}

type secretValue struct{ v string }

// Generate returns a new random token from crypto/rand (kubeadm's
// GenerateBootstrapToken).
func Generate() (Token, error) {
	s, err := bootstraputil.GenerateBootstrapToken()
	if err != nil {
		return Token{}, fmt.Errorf("generate a bootstrap token: %w", err)
	}
	return Parse(s)
}

// ErrMalformed is returned by Parse. Its message never contains the input.
var ErrMalformed = fmt.Errorf("not a bootstrap token of the form %q", bootstrapapi.BootstrapTokenPattern)

// Parse reads "<id>.<secret>". On failure the error does not repeat s, which
// may be a mistyped real token.
func Parse(s string) (Token, error) {
	m := bootstraputil.BootstrapTokenRegexp.FindStringSubmatch(s)
	if len(m) != 3 {
		return Token{}, ErrMalformed
	}
	return Token{id: m[1], secret: &secretValue{m[2]}}, nil
}

// ParseIDOrToken accepts a token ID ("abcdef") or a whole token and returns
// the ID. Errors do not repeat the input.
func ParseIDOrToken(s string) (string, error) {
	if bootstraputil.IsValidBootstrapTokenID(s) {
		return s, nil
	}
	t, err := Parse(s)
	if err != nil {
		return "", errors.New("not a token ID of the form " + bootstrapapi.BootstrapTokenIDPattern +
			" nor a token of the form " + bootstrapapi.BootstrapTokenPattern)
	}
	return t.ID(), nil
}

// IsZero reports whether t holds no token.
func (t Token) IsZero() bool { return t.secret == nil }

// ID is the public half.
func (t Token) ID() string { return t.id }

// Reveal returns the whole token. Call it only to print the token where the
// user asked for it, or to hand it to code that needs the secret.
func (t Token) Reveal() string {
	if t.secret == nil {
		return ""
	}
	return bootstraputil.TokenFromIDAndSecret(t.id, t.secret.v)
}

// secretPart is the secret half, for signing and for the Secret's data.
func (t Token) secretPart() string {
	if t.secret == nil {
		return ""
	}
	return t.secret.v
}

// SecretName is the name of the token's Secret in kube-system.
func (t Token) SecretName() string { return bootstraputil.BootstrapTokenSecretName(t.id) }

// kubeadm returns kubeadm's representation, for its library functions only.
// Never log or print the result.
func (t Token) kubeadm() *bootstraptokenv1.BootstrapTokenString {
	return &bootstraptokenv1.BootstrapTokenString{ID: t.id, Secret: t.secretPart()}
}

// String shows the ID and hides the secret.
func (t Token) String() string {
	if t.id == "" {
		return "<no token>"
	}
	return t.id + "." + Redacted
}

// GoString is used by %#v.
func (t Token) GoString() string { return "token.Token(" + t.String() + ")" }

// Format covers every fmt verb, so %x or %d cannot reach the fields either.
func (t Token) Format(f fmt.State, verb rune) {
	switch verb {
	case 'q':
		fmt.Fprintf(f, "%q", t.String())
	case 'v':
		if f.Flag('#') {
			_, _ = f.Write([]byte(t.GoString()))
			return
		}
		_, _ = f.Write([]byte(t.String()))
	default:
		_, _ = f.Write([]byte(t.String()))
	}
}

// MarshalJSON writes the redacted form.
func (t Token) MarshalJSON() ([]byte, error) { return []byte(fmt.Sprintf("%q", t.String())), nil }

// MarshalText writes the redacted form (YAML, text encoders, map keys).
func (t Token) MarshalText() ([]byte, error) { return []byte(t.String()), nil }

// MarshalLog implements logr.Marshaler: structured logs get the redacted form.
func (t Token) MarshalLog() any { return t.String() }
