package token

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/util/duration"
	bootstrapapi "k8s.io/cluster-bootstrap/token/api"
	"k8s.io/klog/v2"
	bootstraptokenv1 "k8s.io/kubernetes/cmd/kubeadm/app/apis/bootstraptoken/v1"
	outputv1alpha3 "k8s.io/kubernetes/cmd/kubeadm/app/apis/output/v1alpha3"
)

// Listed is one token as "token list" shows it: kubeadm's output type
// (apiVersion output.kubeadm.k8s.io/v1alpha3, kind BootstrapToken), which
// carries the whole token, as kubeadm's list does for the administrators
// allowed to read kube-system Secrets.
type Listed = outputv1alpha3.BootstrapToken

// List returns the cluster's bootstrap tokens, sorted by ID. A Secret of the
// bootstrap token type that does not hold a valid token is skipped with a
// warning naming the Secret (never its content).
func List(ctx context.Context, c Cluster) ([]Listed, error) {
	secrets, err := c.Client.CoreV1().Secrets(metav1.NamespaceSystem).List(ctx, metav1.ListOptions{
		FieldSelector: fields.OneTermEqualSelector("type", string(bootstrapapi.SecretTypeBootstrapToken)).String(),
	})
	if err != nil {
		return nil, fmt.Errorf("list bootstrap tokens in %s: %w", metav1.NamespaceSystem, err)
	}
	out := make([]Listed, 0, len(secrets.Items))
	for i := range secrets.Items {
		s := &secrets.Items[i]
		if s.Type != bootstrapapi.SecretTypeBootstrapToken {
			continue // the field selector is not honoured everywhere (fakes)
		}
		bt, err := bootstraptokenv1.BootstrapTokenFromSecret(s)
		if err != nil {
			// kubeadm's message may quote the malformed token: do not pass it on.
			klog.V(1).Infof("[token] Secret %s/%s is not a valid bootstrap token", s.Namespace, s.Name)
			c.warnf("skipping Secret %s/%s: it is not a valid bootstrap token", s.Namespace, s.Name)
			continue
		}
		DefaultLogFilter.Register(Token{id: bt.Token.ID, secret: &secretValue{bt.Token.Secret}})
		out = append(out, Listed{
			TypeMeta:       metav1.TypeMeta{APIVersion: outputv1alpha3.SchemeGroupVersion.String(), Kind: "BootstrapToken"},
			BootstrapToken: *bt,
		})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Token.ID < out[j].Token.ID })
	return out, nil
}

// ListObject wraps tokens as a v1 List, for -o json and -o yaml.
func ListObject(tokens []Listed) map[string]any {
	items := make([]any, len(tokens))
	for i := range tokens {
		items[i] = tokens[i]
	}
	return map[string]any{"apiVersion": "v1", "kind": "List", "items": items}
}

// PrintTable writes tokens as kubeadm's "token list" table: TOKEN, TTL,
// EXPIRES, USAGES, DESCRIPTION, EXTRA GROUPS.
func PrintTable(w io.Writer, tokens []Listed, now time.Time) error {
	tw := tabwriter.NewWriter(w, 10, 4, 3, ' ', 0)
	fmt.Fprintln(tw, "TOKEN\tTTL\tEXPIRES\tUSAGES\tDESCRIPTION\tEXTRA GROUPS")
	for _, t := range tokens {
		ttl, expires := "<forever>", "<never>"
		if t.Expires != nil {
			ttl = duration.ShortHumanDuration(t.Expires.Sub(now))
			if !now.Before(t.Expires.Time) {
				ttl = "<expired>"
			}
			expires = t.Expires.UTC().Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", t.Token.String(), ttl, expires,
			orNone(strings.Join(t.Usages, ",")), orNone(oneLine(t.Description)), orNone(strings.Join(t.Groups, ",")))
	}
	return tw.Flush()
}

func orNone(s string) string {
	if s == "" {
		return "<none>"
	}
	return s
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
