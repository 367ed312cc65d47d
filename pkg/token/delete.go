package token

import (
	"context"
	"errors"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	bootstraputil "k8s.io/cluster-bootstrap/token/util"
	"k8s.io/klog/v2"
)

// Deleted says what Delete did for one token.
type Deleted struct {
	ID string `json:"id"`
	// Found is false when no such token existed (nothing to do: not an error).
	Found bool `json:"found"`
	// SignatureRemoved says edgeadm took its own cluster-info signature for
	// the token away.
	SignatureRemoved bool `json:"signatureRemoved"`
	// SignatureLeft says edgeadm had signed cluster-info for the token but
	// the signature has since been changed by someone else, so it was left.
	SignatureLeft bool `json:"signatureLeft,omitempty"`
}

// ParseIDs turns "token delete" arguments (IDs or whole tokens) into IDs,
// before anything is sent to the cluster. Errors name the argument's
// position, never its value.
func ParseIDs(args []string) ([]string, error) {
	ids := make([]string, 0, len(args))
	var errs []error
	for i, a := range args {
		id, err := ParseIDOrToken(a)
		if err != nil {
			errs = append(errs, &ValidationError{fmt.Errorf("argument %d: %w", i+1, err)})
			continue
		}
		ids = append(ids, id)
	}
	return ids, errors.Join(errs...)
}

// Delete removes the tokens given by ID or whole token: first the signature edgeadm
// added to cluster-info for one (so it stops working for discovery first),
// then the Secret. A token that does not exist is reported, not an error, so
// that Delete can be repeated. Signatures edgeadm added for other tokens that
// are gone or expired are removed too.
func Delete(ctx context.Context, c Cluster, idsOrTokens []string, dryRun bool) ([]Deleted, error) {
	ids, err := ParseIDs(idsOrTokens)
	if err != nil {
		return nil, err
	}
	rec, err := readRecord(ctx, c.Client)
	if err != nil {
		return nil, err
	}
	secrets := c.Client.CoreV1().Secrets(metav1.NamespaceSystem)
	var out []Deleted
	var errs []error
	for _, id := range ids {
		d := Deleted{ID: id}
		name := bootstraputil.BootstrapTokenSecretName(id)
		_, err := secrets.Get(ctx, name, metav1.GetOptions{})
		switch {
		case err == nil:
			d.Found = true
		case !apierrors.IsNotFound(err):
			errs = append(errs, fmt.Errorf("read bootstrap token %q: %w", id, err))
			continue
		}
		sig, signed := rec.signed[id]
		if dryRun {
			d.SignatureRemoved = signed
			out = append(out, d)
			continue
		}
		if signed {
			outcome, err := removeSignature(ctx, c.Client, id, sig)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			delete(rec.signed, id)
			d.SignatureRemoved = outcome == unsignRemoved
			if outcome == unsignChanged {
				d.SignatureLeft = true
				c.warnf("the cluster-info signature for token %q was changed by someone else since edgeadm added it: left as it is", id)
			}
		}
		if d.Found {
			err := secrets.Delete(ctx, name, metav1.DeleteOptions{})
			if apierrors.IsNotFound(err) {
				d.Found = false
			} else if err != nil {
				errs = append(errs, fmt.Errorf("delete bootstrap token %q: %w", id, err))
				continue
			}
			klog.V(1).Infof("[token] deleted bootstrap token %q", id)
		}
		out = append(out, d)
	}
	if !dryRun {
		pruneSignatures(ctx, c, rec)
	}
	return out, errors.Join(errs...)
}

// RemoveSignatures takes every signature edgeadm added to cluster-info out
// again (each only if unchanged since) and drops the notes: for detach, which
// must leave the user's cluster-info as it was. It returns the IDs whose
// signature was removed.
func RemoveSignatures(ctx context.Context, c Cluster) ([]string, error) {
	rec, err := readRecord(ctx, c.Client)
	if err != nil {
		return nil, err
	}
	var removed []string
	var errs []error
	for id, sig := range rec.signed {
		outcome, err := removeSignature(ctx, c.Client, id, sig)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if outcome == unsignRemoved {
			removed = append(removed, id)
		}
	}
	return removed, errors.Join(errs...)
}
