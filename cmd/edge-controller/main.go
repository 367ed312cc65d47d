// Command edge-controller keeps one EdgeNode per edge node and keeps merely
// disconnected edge nodes from being evicted (see pkg/edgecontroller).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/pflag"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"

	"github.com/edgeadm/edgeadm/manifests"
	"github.com/edgeadm/edgeadm/pkg/edgecontroller"
	"github.com/edgeadm/edgeadm/pkg/version"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := Run(ctx, os.Args[1:], os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "edge-controller:", err)
		os.Exit(1)
	}
}

type options struct {
	kubeconfig  string
	ctrl        edgecontroller.Options
	workers     int
	syncTimeout time.Duration
	leaderElect bool
	leNamespace string
	leName      string
	leLease     time.Duration
	leRenew     time.Duration
	leRetry     time.Duration
}

// Run parses args and runs the controller until ctx ends or leadership is lost.
func Run(ctx context.Context, args []string, stderr io.Writer) error {
	o := options{ctrl: edgecontroller.DefaultOptions()}
	fs := pflag.NewFlagSet("edge-controller", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.kubeconfig, "kubeconfig", "", "kubeconfig file; empty: in-cluster configuration")
	fs.DurationVar(&o.ctrl.GracePeriod, "grace-period", o.ctrl.GracePeriod,
		"a node whose kubelet has not renewed its Lease for this long is disconnected: its EdgeNode says NotReady by then (decided 1s earlier, for the write) and edge-controller reports for it. Keep it above the kubelet's renew interval (10s) plus 1s and below kube-controller-manager's --node-monitor-grace-period")
	fs.DurationVar(&o.ctrl.MaxDisconnect, "max-disconnect", o.ctrl.MaxDisconnect,
		"how long after its kubelet's last heartbeat a disconnected node is kept from eviction; then the node lifecycle controller takes its normal course")
	fs.DurationVar(&o.ctrl.LeaseRenewInterval, "lease-renew-interval", o.ctrl.LeaseRenewInterval, "how often the Lease of a covered node is renewed")
	fs.DurationVar(&o.ctrl.StatusUpdateInterval, "status-update-interval", o.ctrl.StatusUpdateInterval, "how often the Ready condition of a covered node gets a fresh heartbeat")
	fs.StringVar(&o.ctrl.ClusterDomain, "cluster-domain", o.ctrl.ClusterDomain,
		"the cluster's DNS domain: edgehub's certificate for the kubernetes Service may name kubernetes.default.svc.<domain>")
	fs.IntVar(&o.workers, "workers", 4, "nodes reconciled in parallel")
	fs.DurationVar(&o.syncTimeout, "cache-sync-timeout", 2*time.Minute, "bound on the first list of Nodes, Leases and EdgeNodes")
	fs.BoolVar(&o.leaderElect, "leader-elect", true, "run only while holding the leader Lease (several replicas may run)")
	fs.StringVar(&o.leNamespace, "leader-elect-namespace", manifests.Namespace, "namespace of the leader Lease")
	fs.StringVar(&o.leName, "leader-elect-name", "edge-controller", "name of the leader Lease")
	fs.DurationVar(&o.leLease, "leader-elect-lease-duration", 15*time.Second, "leader Lease duration")
	fs.DurationVar(&o.leRenew, "leader-elect-renew-deadline", 10*time.Second, "leader renew deadline")
	fs.DurationVar(&o.leRetry, "leader-elect-retry-period", 2*time.Second, "leader retry period")
	showVersion := fs.Bool("version", false, "print the version and exit")
	gofs := flag.NewFlagSet("klog", flag.ContinueOnError)
	klog.InitFlags(gofs)
	fs.AddGoFlagSet(gofs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *showVersion {
		fmt.Fprintln(stderr, version.Version)
		return nil
	}
	if err := o.ctrl.Validate(); err != nil {
		return err
	}
	log := klog.Background()

	cfg, err := restConfig(o.kubeconfig)
	if err != nil {
		return err
	}
	cfg.UserAgent = "edge-controller/" + version.Version
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return err
	}
	comp, err := edgecontroller.NewComponent(client, dyn, clock.RealClock{}, o.ctrl, o.workers, log)
	if err != nil {
		return err
	}
	runLeading := func(ctx context.Context) error {
		if err := comp.Start(ctx, o.syncTimeout); err != nil {
			return err
		}
		<-ctx.Done()
		stopCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return comp.Stop(stopCtx)
	}
	if !o.leaderElect {
		return runLeading(ctx)
	}

	id, err := os.Hostname()
	if err != nil {
		return err
	}
	id = fmt.Sprintf("%s_%d", id, os.Getpid())
	lock, err := resourcelock.New(resourcelock.LeasesResourceLock, o.leNamespace, o.leName, client.CoreV1(), client.CoordinationV1(),
		resourcelock.ResourceLockConfig{Identity: id})
	if err != nil {
		return err
	}
	var runErr error
	leaderCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	leaderelection.RunOrDie(leaderCtx, leaderelection.LeaderElectionConfig{
		Lock: lock, ReleaseOnCancel: true, Name: o.leName,
		LeaseDuration: o.leLease, RenewDeadline: o.leRenew, RetryPeriod: o.leRetry,
		Callbacks: leaderelection.LeaderCallbacks{
			OnStartedLeading: func(ctx context.Context) {
				log.Info("leading", "identity", id)
				runErr = runLeading(ctx)
				cancel()
			},
			OnStoppedLeading: func() { log.Info("no longer leading", "identity", id) },
		},
	})
	if runErr != nil {
		return runErr
	}
	if ctx.Err() == nil {
		return errors.New("lost leadership")
	}
	return nil
}

func restConfig(kubeconfig string) (*rest.Config, error) {
	if kubeconfig == "" {
		return rest.InClusterConfig()
	}
	return clientcmd.BuildConfigFromFlags("", kubeconfig)
}
