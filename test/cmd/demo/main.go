// Command demo brings up a local cluster and an edge host with the test
// environment and runs edgeadm on them, printing every command it runs so a
// reader can repeat them by hand. It tears everything down at the end; with
// KEEP=1 it keeps the cluster up until Ctrl-C (or SIGTERM).
//
// Run it with `make demo` (root; builds bin/edgeadm and the test environment).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/edgeadm/edgeadm/test/testenv"
)

func main() {
	if err := run(os.Stdout, os.Stderr); err != nil {
		fmt.Fprintf(os.Stderr, "demo failed: %v\n", err)
		os.Exit(1)
	}
}

type demo struct {
	out      io.Writer
	edgeadm  string
	kubectl  string
	cluster  *testenv.ControlPlane
	net      *testenv.Network
	host     *testenv.EdgeHost
	pkg      string
	teardown []func(context.Context) error
}

func run(stdout, stderr io.Writer) error {
	flavour := flag.String("flavour", string(testenv.Bare), "cluster flavour: kubeadm-like, bare or bare-no-bootstrapsigner")
	edgeadm := flag.String("edgeadm", "bin/edgeadm", "the edgeadm binary to run")
	pkg := flag.String("install-pkg", "", "install package for the edge host (default: the one for this arch in _output/install-pkg)")
	flag.Parse()
	if os.Geteuid() != 0 {
		return errors.New("the demo makes network namespaces and machines: run it as root")
	}
	d := &demo{out: stdout}
	var err error
	if d.edgeadm, err = filepath.Abs(*edgeadm); err != nil {
		return err
	}
	if _, err := os.Stat(d.edgeadm); err != nil {
		return fmt.Errorf("no edgeadm binary at %s: run make build", d.edgeadm)
	}
	d.pkg = *pkg
	if d.pkg == "" {
		matches, _ := filepath.Glob("_output/install-pkg/kube-linux-" + runtime.GOARCH + "-*.tar.gz")
		if len(matches) > 0 {
			d.pkg, _ = filepath.Abs(matches[len(matches)-1])
		}
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	defer d.tearDown(stderr)

	if err := d.up(ctx, testenv.Flavour(*flavour)); err != nil {
		return err
	}
	if err := d.flows(ctx); err != nil {
		return err
	}
	if os.Getenv("KEEP") == "1" {
		d.say("The cluster stays up. From another shell:\n  export KUBECONFIG=%s\n  kubectl get nodes\n  nsenter -t %d -a bash    # a shell on the edge host\nPress Ctrl-C to tear it all down.",
			d.cluster.AdminKubeconfig, d.host.InitPID())
		<-ctx.Done()
	}
	return nil
}

func (d *demo) up(ctx context.Context, flavour testenv.Flavour) error {
	paths, err := testenv.LocatePaths()
	if err != nil {
		return err
	}
	d.kubectl = paths.BinPath("kubectl")

	d.say("Making an isolated test network (198.18.0.0/15, no default route anywhere)")
	start := time.Now()
	if d.net, err = testenv.NewNetwork(ctx); err != nil {
		return err
	}
	d.teardown = append(d.teardown, d.net.Teardown)
	d.say("Starting a %s control plane in namespace %s", flavour, d.net.CloudNS)
	if d.cluster, err = testenv.StartControlPlane(ctx, d.net, paths, testenv.ControlPlaneOptions{Flavour: flavour}); err != nil {
		return err
	}
	d.teardown = append(d.teardown, d.cluster.Stop)
	d.say("Control plane ready in %s; its public address %s is not in the apiserver certificate", time.Since(start).Round(time.Millisecond), d.cluster.PublicEndpoint())

	start = time.Now()
	d.say("Booting edge host edge1 (systemd-nspawn, its own network namespace)")
	if d.host, err = testenv.NewEdgeHost(ctx, d.net, paths, "edge1", testenv.EdgeHostOptions{ServiceCIDR: d.cluster.Options.ServiceCIDR}); err != nil {
		return err
	}
	d.teardown = append(d.teardown, d.host.Teardown)
	d.say("Edge host edge1 at %s booted in %s", d.host.IP(), time.Since(start).Round(time.Millisecond))
	return nil
}

// flows runs the edgeadm flows that exist in this build; a command this build
// does not implement yet (exit code 3) is reported and skipped.
func (d *demo) flows(ctx context.Context) error {
	kc := "--kubeconfig=" + d.cluster.AdminKubeconfig
	if _, err := d.edgeadmOnMaster(ctx, "version"); err != nil {
		return err
	}
	if _, err := d.edgeadmOnMaster(ctx, "addon", "edge-apps", kc, "--ca.cert="+d.cluster.CACertPath, "--master-public-addr="+d.cluster.PublicEndpoint(), "--tunnel=false"); err != nil {
		return err
	}
	joinCmd, err := d.edgeadmOnMaster(ctx, "token", "create", kc, "--print-join-command")
	if err != nil {
		return err
	}
	joinCmd = strings.TrimSpace(joinCmd)
	if joinCmd == "" {
		return nil
	}
	if d.pkg == "" {
		d.say("No install package in _output/install-pkg (make install-pkg): skipping the join")
		return nil
	}
	if err := d.host.CopyIn(d.edgeadm, "/usr/local/bin/edgeadm", 0o755); err != nil {
		return err
	}
	if err := d.host.CopyIn(d.pkg, "/root/"+filepath.Base(d.pkg), 0o644); err != nil {
		return err
	}
	argv := append(strings.Fields(joinCmd), "--install-pkg-path=/root/"+filepath.Base(d.pkg))
	d.say("On the edge host:\n  $ %s", strings.Join(redactToken(argv), " "))
	stdout, stderr, err := d.host.Exec(ctx, argv...)
	fmt.Fprint(d.out, indent(stderr+stdout))
	if err != nil {
		if strings.Contains(stderr, "not implemented") {
			d.say("join is not built yet in this edgeadm: skipped")
			return nil
		}
		// Not err itself: it carries the command line, and with it the token.
		return errors.New("edgeadm join on the edge host failed: its output is above")
	}
	return d.kubectlShow(ctx, "get", "nodes", "-o", "wide", "--show-labels")
}

func (d *demo) edgeadmOnMaster(ctx context.Context, args ...string) (string, error) {
	d.say("On the master:\n  $ edgeadm %s", strings.Join(args, " "))
	cmd := exec.CommandContext(ctx, d.edgeadm, args...)
	var out, errOut strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	printable := out.String()
	if args[0] == "token" {
		printable = strings.Join(redactToken(strings.Fields(printable)), " ") + "\n"
	}
	fmt.Fprint(d.out, indent(errOut.String()+printable))
	var exit *exec.ExitError
	if errors.As(err, &exit) && exit.ExitCode() == 3 {
		d.say("(not built yet in this edgeadm: skipped)")
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("edgeadm %s: %w", args[0], err)
	}
	return out.String(), nil
}

func (d *demo) kubectlShow(ctx context.Context, args ...string) error {
	d.say("On the master:\n  $ kubectl %s", strings.Join(args, " "))
	out, err := exec.CommandContext(ctx, d.kubectl, append([]string{"--kubeconfig=" + d.cluster.AdminKubeconfig}, args...)...).CombinedOutput()
	fmt.Fprint(d.out, indent(string(out)))
	return err
}

func (d *demo) tearDown(stderr io.Writer) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	d.say("Tearing down: edge host, control plane, network")
	for i := len(d.teardown) - 1; i >= 0; i-- {
		if err := d.teardown[i](ctx); err != nil {
			fmt.Fprintf(stderr, "teardown: %v\n", err)
		}
	}
	if d.net != nil {
		if left := testenv.Leftovers(ctx, d.net, d.cluster); len(left) > 0 {
			fmt.Fprintf(stderr, "teardown left behind: %s\n", strings.Join(left, ", "))
		}
	}
}

func (d *demo) say(format string, args ...any) {
	fmt.Fprintf(d.out, "\n==> "+format+"\n", args...)
}

// redactToken hides the secret half of a bootstrap token in a printed command;
// the demo output is the kind of thing people paste into tickets.
func redactToken(fields []string) []string {
	out := make([]string, len(fields))
	for i, f := range fields {
		out[i] = f
		if i > 0 && (fields[i-1] == "--token") || strings.HasPrefix(f, "--token=") {
			if j := strings.IndexByte(f, '.'); j >= 0 {
				out[i] = f[:j+1] + "****************"
			}
		}
	}
	return out
}

func indent(s string) string {
	s = strings.TrimRight(s, "\n")
	if s == "" {
		return ""
	}
	return "    " + strings.ReplaceAll(s, "\n", "\n    ") + "\n"
}
