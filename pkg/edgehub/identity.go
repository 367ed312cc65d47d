package edgehub

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"slices"
	"strings"
)

// callerKind is who a local caller is, as far as edgehub can tell.
type callerKind int

const (
	// callerAnonymous sent no credentials: forwarded anonymously online,
	// never served from the cache.
	callerAnonymous callerKind = iota
	// callerNode presented this node's client certificate: edgehub acts
	// upstream with the node's own credentials.
	callerNode
	// callerToken sent an Authorization header: forwarded as is.
	callerToken
)

// caller is a local client of edgehub and the cache partition it reads.
type caller struct {
	kind callerKind
	// cacheKey is the store identity: "node", "token:<sha256 hex>"; empty
	// for anonymous callers, who have no partition.
	cacheKey string
}

// forbiddenError is a request edgehub refuses before forwarding it.
type forbiddenError struct{ reason string }

func (e *forbiddenError) Error() string { return e.reason }

// identify decides who r comes from. A client certificate has already been
// verified against the cluster CA by the TLS handshake; it is the node's own
// only for CN system:node:<nodeName> in O system:nodes. edgehub holds only
// the node's credentials, so it cannot act as anyone else presenting a
// certificate: those are refused rather than forwarded as someone they are
// not.
func identify(r *http.Request, nodeName string) (caller, error) {
	for h := range r.Header {
		// Impersonation would make edgehub ask, with the node's credentials
		// or a caller's token, for another user's view, and the answer would
		// land in the cache partition of the caller, not of the impersonated
		// user. Nothing on a node needs it through edgehub.
		if strings.HasPrefix(strings.ToLower(h), "impersonate-") {
			return caller{}, &forbiddenError{reason: "edgehub: impersonation headers (" + h + ") are not accepted from local clients"}
		}
	}
	if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
		if len(r.TLS.VerifiedChains) == 0 {
			return caller{}, &forbiddenError{reason: "edgehub: client certificate not verified by the cluster CA"}
		}
		leaf := r.TLS.PeerCertificates[0]
		if leaf.Subject.CommonName == "system:node:"+nodeName && slices.Contains(leaf.Subject.Organization, "system:nodes") {
			return caller{kind: callerNode, cacheKey: "node"}, nil
		}
		return caller{}, &forbiddenError{reason: fmt.Sprintf("edgehub: serves node %s and cannot act for certificate %q; use a token or this node's credentials", nodeName, leaf.Subject.CommonName)}
	}
	if auth := r.Header.Get("Authorization"); auth != "" {
		return caller{kind: callerToken, cacheKey: tokenCacheKey(auth)}, nil
	}
	return caller{kind: callerAnonymous}, nil
}

// tokenCacheKey names a token's cache partition by a hash, so the token
// itself is never written to disk or logged. A rotated token (projected
// service account tokens are renewed hourly) starts a new partition: edgehub
// does not verify JWT signatures, so it cannot prove two tokens are the same
// service account, and must not merge their partitions.
func tokenCacheKey(authorization string) string {
	cred := authorization
	if after, ok := strings.CutPrefix(authorization, "Bearer "); ok {
		cred = strings.TrimSpace(after)
	}
	sum := sha256.Sum256([]byte(cred))
	return "token:" + hex.EncodeToString(sum[:])
}
