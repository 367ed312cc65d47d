// Command edgehub is the node-local face of the apiserver on an edge node:
// it forwards while the cloud answers and serves the node's clients from
// its cache while the link is down (see pkg/edgehub and docs/edgehub.md).
//
//	edgehub --config /etc/edgehub/config.yaml        run the daemon
//	edgehub init --config /etc/edgehub/config.yaml   only create the local serving PKI
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/pflag"
	"k8s.io/klog/v2"

	"github.com/edgeadm/edgeadm/pkg/edgehub"
	"github.com/edgeadm/edgeadm/pkg/edgehub/cache"
	"github.com/edgeadm/edgeadm/pkg/version"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := Run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	klog.Flush()
	if err != nil {
		fmt.Fprintln(os.Stderr, "edgehub:", err)
		os.Exit(1)
	}
}

// Run parses args and runs edgehub (or its init) until ctx ends.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	initOnly := false
	if len(args) > 0 && args[0] == "init" {
		initOnly, args = true, args[1:]
	}
	fs := pflag.NewFlagSet("edgehub", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", edgehub.DefaultConfigPath, "edgehub configuration file (kind EdgeHubConfiguration)")
	showVersion := fs.Bool("version", false, "print the version and exit")
	gofs := flag.NewFlagSet("klog", flag.ContinueOnError)
	klog.InitFlags(gofs)
	fs.AddGoFlagSet(gofs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *showVersion {
		fmt.Fprintln(stdout, "edgehub", version.Get().String())
		return nil
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q: the only subcommand is init", fs.Arg(0))
	}
	cfg, err := edgehub.LoadConfig(*configPath)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("create dataDir: %w", err)
	}
	if err := os.Chmod(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("restrict dataDir: %w", err)
	}
	if err := edgehub.EnsurePKI(cfg.PKIDir(), time.Now()); err != nil {
		return err
	}
	if initOnly {
		return nil
	}
	log := klog.Background()
	// Listen before the cache opens: during a restart the kubelet's
	// connections wait for this edgehub instead of being refused.
	apiLn, healthLn, err := edgehub.ListenFaces(cfg)
	if err != nil {
		return err
	}
	store, err := cache.Open(cfg.CacheDir(), cache.Options{Log: log})
	if err != nil {
		apiLn.Close()
		healthLn.Close()
		return fmt.Errorf("open the cache: %w", err)
	}
	srv, err := edgehub.NewServer(cfg, edgehub.DefaultTuning(), store, log)
	if err != nil {
		apiLn.Close()
		healthLn.Close()
		store.Close()
		return err
	}
	srv.UseListeners(apiLn, healthLn)
	if err := srv.Start(ctx); err != nil {
		store.Close()
		return err
	}
	<-ctx.Done()
	log.Info("edgehub stopping")
	stopCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err = srv.Stop(stopCtx)
	if cerr := store.Close(); cerr != nil && err == nil {
		err = fmt.Errorf("close the cache: %w", cerr)
	}
	return err
}
