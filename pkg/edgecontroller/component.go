package edgecontroller

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	certificatesv1 "k8s.io/api/certificates/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"

	edgev1 "github.com/edgeadm/edgeadm/pkg/apis/edge/v1alpha1"
)

// State is where a Component is in its life.
type State string

const (
	StateNew      State = "New"
	StateStarting State = "Starting" // informers started, caches not yet synced
	StateRunning  State = "Running"  // caches synced, workers reconciling
	StateStopped  State = "Stopped"
)

// ErrTransition is returned for a call the current state does not allow.
var ErrTransition = errors.New("edge-controller: wrong state for this call")

// Component runs the Controller: informers on edge Nodes, their Leases and
// EdgeNodes, a work queue, and workers. Start once, Stop once.
type Component struct {
	client  kubernetes.Interface
	dyn     dynamic.Interface
	clock   clock.WithTicker
	opts    Options
	workers int
	log     klog.Logger

	mu     sync.Mutex
	state  State
	cancel context.CancelFunc
	done   chan struct{}
	ctrl   *Controller
	csrs   *CSRApprover
	queue  workqueue.TypedRateLimitingInterface[string]
}

// NewComponent makes a Component in StateNew.
func NewComponent(client kubernetes.Interface, dyn dynamic.Interface, clk clock.WithTicker, opts Options, workers int, log klog.Logger) (*Component, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if workers < 1 {
		workers = 1
	}
	return &Component{client: client, dyn: dyn, clock: clk, opts: opts, workers: workers, log: log, state: StateNew}, nil
}

// State reports the current state.
func (c *Component) State() State {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.state
}

// Start starts the informers and, once their caches have synced (bounded by
// syncTimeout), the workers. It returns when the component is Running.
func (c *Component) Start(ctx context.Context, syncTimeout time.Duration) error {
	c.mu.Lock()
	if c.state != StateNew {
		s := c.state
		c.mu.Unlock()
		return fmt.Errorf("%w: Start in state %s", ErrTransition, s)
	}
	c.state = StateStarting
	ctx, cancel := context.WithCancel(ctx)
	c.cancel, c.done = cancel, make(chan struct{})
	c.mu.Unlock()

	nodeInf := informers.NewSharedInformerFactoryWithOptions(c.client, 0, informers.WithTweakListOptions(func(o *metav1.ListOptions) {
		o.LabelSelector = EdgeNodeSelector.String()
	}))
	leaseInf := informers.NewSharedInformerFactoryWithOptions(c.client, 0, informers.WithNamespace(NodeLeaseNamespace))
	dynInf := dynamicinformer.NewFilteredDynamicSharedInformerFactory(c.dyn, 0, metav1.NamespaceAll, nil)
	// Only kubelet-serving CSRs: edgehub's kubernetes Service certificates
	// are among them (approver.go).
	csrInf := informers.NewSharedInformerFactoryWithOptions(c.client, 0, informers.WithTweakListOptions(func(o *metav1.ListOptions) {
		o.FieldSelector = fields.OneTermEqualSelector("spec.signerName", certificatesv1.KubeletServingSignerName).String()
	}))
	nodes := nodeInf.Core().V1().Nodes()
	csrs := csrInf.Certificates().V1().CertificateSigningRequests()
	leases := leaseInf.Coordination().V1().Leases()
	edge := dynInf.ForResource(edgev1.Resource)

	c.queue = workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[string](),
		workqueue.TypedRateLimitingQueueConfig[string]{Name: "edge-controller", Clock: c.clock})
	c.ctrl = &Controller{Client: c.client, Dynamic: c.dyn, Nodes: nodes.Lister(), Leases: leases.Lister(), Edge: edge.Lister(),
		Clock: c.clock, Opts: c.opts, Log: c.log}
	c.csrs = &CSRApprover{Client: c.client, CSRs: csrs.Lister(), Nodes: nodes.Lister(), ClusterDomain: c.opts.ClusterDomain, Log: c.log}

	enqueue := func(obj any) {
		if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
			obj = t.Obj
		}
		if m, err := metaName(obj); err == nil {
			c.queue.Add(m)
		}
	}
	h := cache.ResourceEventHandlerFuncs{AddFunc: enqueue, UpdateFunc: func(_, n any) { enqueue(n) }, DeleteFunc: enqueue}
	var errs []error
	for _, inf := range []cache.SharedIndexInformer{nodes.Informer(), leases.Informer(), edge.Informer()} {
		if _, err := inf.AddEventHandler(h); err != nil {
			errs = append(errs, err)
		}
	}
	enqueueCSR := func(obj any) {
		if csr, ok := obj.(*certificatesv1.CertificateSigningRequest); ok {
			c.queue.Add(csrKeyPrefix + csr.Name)
		}
	}
	if _, err := csrs.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: enqueueCSR, UpdateFunc: func(_, n any) { enqueueCSR(n) }}); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		c.fail()
		return err
	}
	csrInf.Start(ctx.Done())
	nodeInf.Start(ctx.Done())
	leaseInf.Start(ctx.Done())
	dynInf.Start(ctx.Done())

	syncCtx, syncCancel := context.WithTimeout(ctx, syncTimeout)
	defer syncCancel()
	if !cache.WaitForCacheSync(syncCtx.Done(), nodes.Informer().HasSynced, leases.Informer().HasSynced, edge.Informer().HasSynced, csrs.Informer().HasSynced) {
		c.fail()
		csrInf.Shutdown()
		nodeInf.Shutdown()
		leaseInf.Shutdown()
		dynInf.Shutdown()
		return fmt.Errorf("edge-controller: caches of Nodes, Leases, EdgeNodes and CSRs did not sync within %s (is the EdgeNode CRD installed?)", syncTimeout)
	}

	var wg sync.WaitGroup
	for range c.workers {
		wg.Add(1)
		go func() { defer wg.Done(); c.work(ctx) }()
	}
	go func() {
		<-ctx.Done()
		c.queue.ShutDownWithDrain()
		wg.Wait()
		csrInf.Shutdown()
		nodeInf.Shutdown()
		leaseInf.Shutdown()
		dynInf.Shutdown()
		close(c.done)
	}()
	c.mu.Lock()
	c.state = StateRunning
	c.mu.Unlock()
	c.log.Info("edge-controller running", "gracePeriod", c.opts.GracePeriod, "maxDisconnect", c.opts.MaxDisconnect)
	return nil
}

func (c *Component) fail() {
	c.mu.Lock()
	c.state = StateStopped
	c.cancel()
	c.mu.Unlock()
}

// Stop stops the workers and informers and waits for them, up to ctx.
func (c *Component) Stop(ctx context.Context) error {
	c.mu.Lock()
	if c.state != StateRunning {
		s := c.state
		c.mu.Unlock()
		return fmt.Errorf("%w: Stop in state %s", ErrTransition, s)
	}
	c.state = StateStopped
	c.cancel()
	done := c.done
	c.mu.Unlock()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("edge-controller: workers did not stop: %w", ctx.Err())
	}
}

func (c *Component) work(ctx context.Context) {
	for {
		name, shutdown := c.queue.Get()
		if shutdown {
			return
		}
		var after time.Duration
		var err error
		if csr, ok := strings.CutPrefix(name, csrKeyPrefix); ok {
			err = c.csrs.Sync(ctx, csr)
		} else {
			after, err = c.ctrl.Sync(ctx, name)
		}
		switch {
		case err != nil:
			c.log.Error(err, "sync", "node", name)
			c.queue.AddRateLimited(name)
		default:
			c.queue.Forget(name)
			if after > 0 {
				c.queue.AddAfter(name, after)
			}
		}
		c.queue.Done(name)
	}
}

func metaName(obj any) (string, error) {
	switch o := obj.(type) {
	case *corev1.Node:
		return o.Name, nil
	case *coordinationv1.Lease:
		return o.Name, nil
	case *unstructured.Unstructured:
		return o.GetName(), nil
	}
	return "", fmt.Errorf("unexpected %T", obj)
}
