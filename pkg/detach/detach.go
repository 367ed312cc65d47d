// Package detach undoes "edgeadm addon edge-apps": it deletes exactly the
// objects the ownership record (package state) says addon created, in
// reverse order, leaves adopted objects untouched, and deletes the record
// last. It refuses while edge nodes are joined unless forced.
package detach

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"

	"github.com/edgeadm/edgeadm/manifests"
	"github.com/edgeadm/edgeadm/pkg/addon"
	"github.com/edgeadm/edgeadm/pkg/state"
	"github.com/edgeadm/edgeadm/pkg/token"
)

// ErrEdgeNodesJoined is returned while edge nodes exist and Force is off.
var ErrEdgeNodesJoined = errors.New("edge nodes are still joined")

// Options are detach's inputs.
type Options struct {
	RESTConfig *rest.Config
	Force      bool
	DryRun     bool
	Progress   io.Writer
	// Timeout bounds the wait for each deleted object (a namespace takes
	// longest: its contents go first) to be gone. Default 2 minutes.
	Timeout time.Duration
	// Tunnel is where this host's files are, to undo the tunnel's change
	// of this master (used when addon noted a tunnel).
	Tunnel addon.TunnelOptions
}

// Action is what detach did, or would do, to one recorded object.
type Action struct {
	state.Object `json:",inline"`
	// Done is "deleted", "would delete", "already gone", "kept (adopted)",
	// or "kept (replaced)" for an object someone else re-created since.
	Done string `json:"done"`
}

// Result lists every action in the order taken.
type Result struct {
	NothingToDo bool          `json:"nothingToDo"`
	DryRun      bool          `json:"dryRun"`
	Actions     []Action      `json:"actions"`
	EdgeNodes   []string      `json:"edgeNodes,omitempty"`
	Tunnel      *TunnelResult `json:"tunnel,omitempty"`
}

// Run detaches.
func Run(ctx context.Context, o Options) (*Result, error) {
	if o.Timeout <= 0 {
		o.Timeout = 2 * time.Minute
	}
	progress := o.Progress
	if progress == nil {
		progress = io.Discard
	}
	cfg := rest.CopyConfig(o.RESTConfig)
	if cfg.Timeout == 0 {
		cfg.Timeout = 30 * time.Second
	}
	cfg.QPS, cfg.Burst = 200, 400
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	if _, err := client.Discovery().ServerVersion(); err != nil {
		return nil, fmt.Errorf("cannot reach the apiserver at %s: %v: check that it runs and that the kubeconfig's server address is right", cfg.Host, err)
	}
	res := &Result{DryRun: o.DryRun}
	rec, err := state.Get(ctx, client)
	if apierrors.IsForbidden(err) {
		return nil, fmt.Errorf("%w: this kubeconfig may not read the edgeadm record %s/%s: nothing was changed; use a cluster-admin kubeconfig (kubeadm's /etc/kubernetes/admin.conf) with --kubeconfig",
			addon.ErrForbidden, state.Namespace, state.Name)
	}
	if err != nil {
		return nil, err
	}
	if rec == nil || !rec.HasAddon() {
		res.NothingToDo = true
		return res, nil
	}
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(client.Discovery()))

	created := rec.Ownership.Created()
	perms := []addon.Permission{{Verb: "list", Resource: "nodes"},
		{Verb: "delete", Resource: "configmaps", Namespace: state.Namespace, Name: state.Name},
		{Verb: "patch", Resource: "configmaps", Namespace: state.Namespace, Name: state.Name},
		{Verb: "get", Resource: "configmaps", Namespace: "kube-public", Name: "cluster-info"},
		{Verb: "patch", Resource: "configmaps", Namespace: "kube-public", Name: "cluster-info"}}
	for _, obj := range created {
		gvk := obj.Ref().GroupVersionKind()
		m, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
		if err != nil {
			continue // not served any more (its CRD is gone): nothing to delete
		}
		for _, v := range []string{"get", "delete"} {
			perms = append(perms, addon.Permission{Verb: v, Group: gvk.Group, Resource: m.Resource.Resource, Namespace: obj.Namespace, Name: obj.Name})
		}
	}
	note, err := addon.GetTunnelNote(ctx, client)
	if err != nil {
		return nil, err
	}
	if note != nil {
		perms = append(perms, addon.TunnelPermissions()...)
	}
	if err := addon.CheckAccess(ctx, client, perms); err != nil {
		return nil, err
	}

	nodes, err := client.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: manifests.EdgeNodeLabel + "=" + manifests.EdgeNodeLabelValue})
	if err != nil {
		return nil, fmt.Errorf("list edge nodes: %w", err)
	}
	for _, n := range nodes.Items {
		res.EdgeNodes = append(res.EdgeNodes, n.Name)
	}
	sort.Strings(res.EdgeNodes)
	if len(res.EdgeNodes) > 0 && !o.Force {
		names := res.EdgeNodes
		if len(names) > 5 {
			names = append(names[:5:5], fmt.Sprintf("and %d more", len(res.EdgeNodes)-5))
		}
		return res, fmt.Errorf("%w (%s): run \"edgeadm reset\" on them first, or pass --force to detach anyway (they lose their edge components); nothing was changed",
			ErrEdgeNodesJoined, strings.Join(names, ", "))
	}
	if len(res.EdgeNodes) > 0 {
		fmt.Fprintf(progress, "[detach] WARNING: --force: %d edge nodes are still joined and lose their edge components\n", len(res.EdgeNodes))
	}

	if note != nil {
		// The masters' API servers first: they must not lose the proxy
		// servers and agents while they still send traffic through them.
		topts := o.Tunnel
		if topts.Waiter == nil {
			topts.Waiter = addon.ClusterWaiter{Client: client, RESTConfig: cfg, Paths: topts.Master().Paths}
		}
		tr, err := undoTunnel(ctx, client, topts, note, o.DryRun, progress)
		res.Tunnel = tr
		if err != nil {
			return res, err
		}
	}
	if !o.DryRun {
		// Signatures "edgeadm token create" added to cluster-info itself
		// (where no bootstrapsigner runs) go first, so an adopted
		// cluster-info is left as it was, and their notes leave the record.
		removed, err := token.RemoveSignatures(ctx, token.Cluster{Client: client, REST: cfg, Warn: progress})
		if err != nil {
			return res, fmt.Errorf("remove the cluster-info signatures edgeadm token added: %w: run detach again", err)
		}
		if len(removed) > 0 {
			fmt.Fprintf(progress, "[detach] removed the cluster-info signatures edgeadm token added for %d tokens\n", len(removed))
		}
		if rec, err = state.Get(ctx, client); err != nil || rec == nil {
			return res, fmt.Errorf("re-read the edgeadm record: %v", err)
		}
	}
	d := &deleter{dyn: dyn, mapper: mapper, dry: o.DryRun, timeout: o.Timeout, progress: progress}
	actions, remaining, derr := d.deleteAll(ctx, rec.Ownership)
	res.Actions = actions
	if o.DryRun {
		fmt.Fprintf(progress, "[detach] would delete the record %s/%s\n", state.Namespace, state.Name)
		return res, nil
	}
	if derr != nil {
		// Keep what is left in the record so that a re-run finishes the job.
		rec.Ownership = remaining
		if err := state.Save(ctx, client, rec); err != nil {
			return res, errors.Join(derr, err)
		}
		return res, derr
	}
	if err := state.Forget(ctx, client, rec); err != nil {
		return res, err
	}
	fmt.Fprintf(progress, "[detach] deleted the record %s/%s\n", state.Namespace, state.Name)
	return res, nil
}

type deleter struct {
	dyn      dynamic.Interface
	mapper   meta.RESTMapper
	dry      bool
	timeout  time.Duration
	progress io.Writer
	mu       sync.Mutex
}

// rank orders deletion: custom resources first, then workloads and
// bindings, then the rest, then namespaces and CRDs (the reverse of addon's
// waves; within a rank, objects go concurrently).
func rank(o state.Object, crdGroups map[string]bool) int {
	gk := o.Ref().GroupVersionKind().GroupKind()
	switch {
	case crdGroups[gk.Group]:
		return 0
	case gk.Group == "apps", gk.Group == "rbac.authorization.k8s.io" && strings.HasSuffix(gk.Kind, "Binding"):
		return 1
	case gk.Kind == "Namespace" && gk.Group == "", gk.Kind == "CustomResourceDefinition":
		return 3
	}
	return 2
}

func (d *deleter) deleteAll(ctx context.Context, own state.Ownership) ([]Action, state.Ownership, error) {
	crdGroups := map[string]bool{}
	for _, o := range own.Created() {
		if o.Kind == "CustomResourceDefinition" {
			if _, g, ok := strings.Cut(o.Name, "."); ok {
				crdGroups[g] = true
			}
		}
	}
	actions := make([]Action, len(own.Objects))
	errs := make([]error, len(own.Objects))
	for r := 0; r <= 3; r++ {
		var wg sync.WaitGroup
		// Reverse record order within the rank.
		for i := len(own.Objects) - 1; i >= 0; i-- {
			o := own.Objects[i]
			if !o.Deletable() || rank(o, crdGroups) != r {
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				start := time.Now()
				done, err := d.deleteOne(ctx, o)
				actions[i] = Action{Object: o, Done: done}
				errs[i] = err
				d.mu.Lock()
				if err != nil {
					fmt.Fprintf(d.progress, "[detach] FAILED %s: %v\n", o.Ref(), err)
				} else {
					fmt.Fprintf(d.progress, "[detach] %s %s (%s)\n", done, o.Ref(), time.Since(start).Round(100*time.Microsecond))
				}
				d.mu.Unlock()
			}()
		}
		wg.Wait()
	}
	var out []Action
	var remaining state.Ownership
	var all []error
	for i := len(own.Objects) - 1; i >= 0; i-- {
		o := own.Objects[i]
		if !o.Deletable() {
			out = append(out, Action{Object: o, Done: "kept (adopted)"})
			continue
		}
		out = append(out, actions[i])
		if errs[i] != nil {
			all = append(all, errs[i])
		}
	}
	for i, o := range own.Objects {
		if !o.Deletable() || errs[i] != nil {
			remaining.Objects = append(remaining.Objects, o)
		}
	}
	return out, remaining, errors.Join(all...)
}

func (d *deleter) deleteOne(ctx context.Context, o state.Object) (string, error) {
	gvk := o.Ref().GroupVersionKind()
	m, err := d.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if err != nil {
		if meta.IsNoMatchError(err) {
			return "already gone", nil
		}
		return "", err
	}
	var ri dynamic.ResourceInterface = d.dyn.Resource(m.Resource)
	if m.Scope.Name() == meta.RESTScopeNameNamespace {
		ri = d.dyn.Resource(m.Resource).Namespace(o.Namespace)
	}
	cur, err := ri.Get(ctx, o.Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return "already gone", nil
	}
	if err != nil {
		return "", err
	}
	uid := o.UID
	if uid == "" {
		// Recorded without a uid (Pending, or the record came from applying
		// dry-run output): delete only what carries edgeadm's label.
		if cur.GetLabels()[state.ManagedByLabel] != state.ManagedByValue {
			return "kept (not labelled " + state.ManagedByLabel + "=" + state.ManagedByValue + ")", nil
		}
		uid = cur.GetUID()
	}
	if cur.GetUID() != uid {
		return "kept (replaced since addon)", nil
	}
	if d.dry {
		return "would delete", nil
	}
	// Background: the object goes at once (after its own finalizers, such as
	// a namespace's or a CRD's cleanup, which waitGone waits for), and the
	// garbage collector removes what it owned (a Deployment's ReplicaSets
	// and Pods) after. Foreground would tie detach to the garbage
	// collector, which stalls for minutes while it resyncs after an API
	// group (the EdgeNode CRD's) comes and goes.
	bg := metav1.DeletePropagationBackground
	err = ri.Delete(ctx, o.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &uid}, PropagationPolicy: &bg})
	switch {
	case apierrors.IsNotFound(err):
		return "already gone", nil
	case apierrors.IsConflict(err):
		return "kept (replaced since addon)", nil
	case err != nil:
		return "", err
	}
	if err := waitGone(ctx, ri, o.Name, uid, d.timeout); err != nil {
		return "", err
	}
	return "deleted", nil
}

// waitGone watches until the object name with uid no longer exists.
func waitGone(ctx context.Context, ri dynamic.ResourceInterface, name string, uid types.UID, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	sel := fields.OneTermEqualSelector("metadata.name", name).String()
	for {
		l, err := ri.List(ctx, metav1.ListOptions{FieldSelector: sel})
		if err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("%s still exists after %s: check its finalizers", name, timeout)
			}
			return err
		}
		if !holds(l.Items, uid) {
			return nil
		}
		w, err := ri.Watch(ctx, metav1.ListOptions{FieldSelector: sel, ResourceVersion: l.GetResourceVersion()})
		if err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("%s still exists after %s: check its finalizers", name, timeout)
			}
			return err
		}
		gone, err := func() (bool, error) {
			defer w.Stop()
			for {
				select {
				case <-ctx.Done():
					return false, fmt.Errorf("%s still exists after %s: check its finalizers", name, timeout)
				case ev, ok := <-w.ResultChan():
					if !ok || ev.Type == watch.Error {
						return false, nil
					}
					if u, ok := ev.Object.(*unstructured.Unstructured); ok && u.GetUID() == uid && ev.Type == watch.Deleted {
						return true, nil
					}
				}
			}
		}()
		if gone || err != nil {
			return err
		}
	}
}

func holds(items []unstructured.Unstructured, uid types.UID) bool {
	for _, it := range items {
		if it.GetUID() == uid {
			return true
		}
	}
	return false
}
