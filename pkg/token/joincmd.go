package token

import (
	"regexp"
	"strings"
)

// JoinCommand is what an edge host runs to join. Reveal renders it with the
// token, for printing where the user asked for it; String hides the token.
type JoinCommand struct {
	Address          Address
	Token            Token
	CACertHashes     []string
	InstallPkgPath   string
	InstallPkgSHA256 string
}

// Reveal renders the command as one shell line, token included:
//
//	edgeadm join <addr> --token <t> --discovery-token-ca-cert-hash sha256:<hex> [--install-pkg-path P] [--install-pkg-sha256 H]
//
// Values a shell would split or expand are single-quoted.
func (j JoinCommand) Reveal() string {
	parts := []string{"edgeadm", "join", shellQuote(j.Address.String()), "--token", shellQuote(j.Token.Reveal())}
	for _, h := range j.CACertHashes {
		parts = append(parts, "--discovery-token-ca-cert-hash", shellQuote(h))
	}
	if j.InstallPkgPath != "" {
		parts = append(parts, "--install-pkg-path", shellQuote(j.InstallPkgPath))
	}
	if j.InstallPkgSHA256 != "" {
		parts = append(parts, "--install-pkg-sha256", shellQuote(j.InstallPkgSHA256))
	}
	return strings.Join(parts, " ")
}

// String is Reveal with the token's secret hidden, for logs and %v.
func (j JoinCommand) String() string {
	s := j.Reveal()
	if r := j.Token.Reveal(); r != "" {
		s = strings.ReplaceAll(s, r, j.Token.String())
	}
	return s
}

var shellSafe = regexp.MustCompile(`^[A-Za-z0-9@%+=:,./_-]+$`)

// shellQuote returns s as one word for a POSIX shell.
func shellQuote(s string) string {
	if s != "" && shellSafe.MatchString(s) {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
