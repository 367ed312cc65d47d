package addon

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"

	authorizationv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// Permission is one thing the user must be allowed to do.
type Permission struct {
	Verb, Group, Resource, Subresource, Namespace, Name string
}

func (p Permission) String() string {
	r := p.Resource
	if p.Group != "" {
		r += "." + p.Group
	}
	if p.Subresource != "" {
		r += "/" + p.Subresource
	}
	if p.Name != "" {
		r += " " + p.Name
	}
	where := "cluster-wide"
	if p.Namespace != "" {
		where = "in namespace " + p.Namespace
	}
	return fmt.Sprintf("%s %s %s", p.Verb, r, where)
}

// ErrForbidden marks a failed permission check: nothing was changed.
var ErrForbidden = errors.New("missing permissions")

// CheckAccess asks the apiserver (SelfSubjectAccessReview, concurrently)
// whether the user may do every one of perms, and fails listing all that
// are denied, before anything is changed.
func CheckAccess(ctx context.Context, c kubernetes.Interface, perms []Permission) error {
	perms = dedupe(perms)
	type result struct {
		p       Permission
		allowed bool
		err     error
	}
	results := make([]result, len(perms))
	sem := make(chan struct{}, 8)
	var wg sync.WaitGroup
	for i, p := range perms {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			r, err := c.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx, &authorizationv1.SelfSubjectAccessReview{
				Spec: authorizationv1.SelfSubjectAccessReviewSpec{ResourceAttributes: &authorizationv1.ResourceAttributes{
					Verb: p.Verb, Group: p.Group, Resource: p.Resource, Subresource: p.Subresource,
					Namespace: p.Namespace, Name: p.Name,
				}},
			}, metav1.CreateOptions{})
			results[i] = result{p: p, err: err, allowed: err == nil && r.Status.Allowed}
		}()
	}
	wg.Wait()
	var denied []string
	for _, r := range results {
		if r.err != nil {
			return fmt.Errorf("check permission to %s: %w", r.p, r.err)
		}
		if !r.allowed {
			denied = append(denied, r.p.String())
		}
	}
	if len(denied) > 0 {
		const show = 6
		more := ""
		if len(denied) > show {
			more = fmt.Sprintf(" and %d more", len(denied)-show)
			denied = denied[:show]
		}
		return fmt.Errorf("%w: this kubeconfig may not %s%s: nothing was changed; use a cluster-admin kubeconfig (kubeadm's /etc/kubernetes/admin.conf) with --kubeconfig",
			ErrForbidden, strings.Join(denied, "; "), more)
	}
	return nil
}

func dedupe(perms []Permission) []Permission {
	seen := map[Permission]bool{}
	var out []Permission
	for _, p := range perms {
		if !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].String() < out[j].String() })
	return out
}
