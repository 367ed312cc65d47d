// Package join implements "edgeadm join": turn this host into an edge node
// of the cluster behind <host:port>. The work is a workflow of phases
// (package phases, kubeadm's workflow runner): "--skip-phases" and
// "edgeadm join phase <name>" come with it. Every change to the host goes
// through the journal, and a failed run rolls back what it changed.
package join

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/kubernetes/cmd/kubeadm/app/cmd/phases/workflow"

	"github.com/edgeadm/edgeadm/pkg/cmd"
	"github.com/edgeadm/edgeadm/pkg/cmd/join/phases"
	"github.com/edgeadm/edgeadm/pkg/cmd/printer"
	"github.com/edgeadm/edgeadm/pkg/host"
)

// KillAtEnv is a test-only hook: when it names a phase, the process kills
// itself with SIGKILL right after that phase finished (its journal entries
// are on disk), so that end-to-end tests can interrupt a join at every phase
// boundary. It has no other use; nobody should set it.
const KillAtEnv = "EDGEADM_TEST_KILL_AT"

// DefaultTimeout bounds each wait of a join.
const DefaultTimeout = 5 * time.Minute

type options struct {
	apiServerEndpoint string

	token                      string
	discoveryTokenCACertHashes []string
	discoveryTokenUnsafeSkipCA bool

	installPkgPath   string
	installPkgSHA256 string

	nodeName   string
	nodeIP     string
	nodeLabels map[string]string

	ignorePreflightErrors []string
	timeout               time.Duration

	dryRun bool
	output string
}

// Deps are what the command takes from the world; tests replace them.
type Deps struct {
	// Paths is where the host's files are (DefaultPaths("/") in production).
	Paths host.Paths
	// Host makes the changes (host.NewReal(Paths) in production); the
	// journal wraps it.
	Host host.Host
	Env  *phases.Env
	// Hostname names the node when --node-name is not given.
	Hostname func() (string, error)
	// WorkDir is where the install package is unpacked while join runs (a
	// private directory in it, removed at the end; "edgeadm reset" removes
	// one a killed join left). /var/tmp: on disk, unlike a tmpfs /tmp.
	WorkDir string
	// Kill is what the test-only KillAtEnv hook calls.
	Kill func()
	// Lock keeps a second join or reset off the host while this one runs;
	// nil takes no lock.
	Lock func() (unlock func(), err error)
}

// DefaultDeps are the real machine.
func DefaultDeps() Deps {
	p := host.DefaultPaths("/")
	return Deps{
		Paths:    p,
		Host:     host.NewReal(p),
		Env:      phases.DefaultEnv(),
		Hostname: os.Hostname,
		WorkDir:  "/var/tmp",
		Kill:     func() { _ = syscall.Kill(os.Getpid(), syscall.SIGKILL) },
		Lock:     func() (func(), error) { return host.LockMachine(p) },
	}
}

// NewCommand returns the "join" command.
func NewCommand(streams cmd.IOStreams) *cobra.Command {
	return NewCommandWith(streams, DefaultDeps())
}

// NewCommandWith returns the "join" command working on deps.
func NewCommandWith(streams cmd.IOStreams, deps Deps) *cobra.Command {
	o := &options{timeout: DefaultTimeout}
	runner := workflow.NewRunner()
	var data *joinData
	c := &cobra.Command{
		Use:   "join <host:port>",
		Short: "Join this host to a cluster as an edge node",
		Long: `Join this host to a cluster as an edge node.

Runs preflight checks (nothing is changed yet), fetches and verifies the install
package, installs the container runtime, kubelet and CNI plugins as systemd units,
discovers the cluster with the bootstrap token, and bootstraps the kubelet's
credentials. Every change to the host is recorded in a journal under
/var/lib/edgeadm before it is made: a failed join rolls back what it changed, and
"edgeadm reset" undoes a join.

<host:port> is the address edge nodes use to reach the API server. When it is an
IP address, /etc/hosts gets the line "<ip> kubernetes.default" and the node talks
to https://kubernetes.default:<port>, a name every API server certificate carries;
a domain must be in the certificate. The command to run is printed by
"edgeadm token create --print-join-command".

A join that completed is not done twice: the same command again exits 0.`,
		Example: `  edgeadm join 203.0.113.10:6443 --token abcdef.0123456789abcdef \
    --discovery-token-ca-cert-hash sha256:<hash> \
    --install-pkg-path ftp://203.0.113.10/kube-linux-amd64-v1.37.1.tar.gz \
    --install-pkg-sha256 <sha256>`,
		Args: func(c *cobra.Command, args []string) error {
			if len(args) != 1 {
				return cmd.UsageError(c, fmt.Errorf("expected one argument, the API server address edge nodes use as <host:port>, got %d", len(args)))
			}
			return nil
		},
		RunE: func(c *cobra.Command, args []string) error {
			if _, err := runner.InitData(args); err != nil {
				return err
			}
			err := runner.Run(args)
			return data.finish(c, err, true)
		},
	}
	fs := c.Flags()
	fs.StringVar(&o.token, "token", "", "Bootstrap token used for discovery and for the kubelet's TLS bootstrap (from \"edgeadm token create\").")
	fs.StringSliceVar(&o.discoveryTokenCACertHashes, "discovery-token-ca-cert-hash", nil,
		`For token-based discovery, validate that the cluster CA's public key matches this hash (format "sha256:<hex>"). May be repeated.`)
	fs.BoolVar(&o.discoveryTokenUnsafeSkipCA, "discovery-token-unsafe-skip-ca-verification", false,
		"For token-based discovery, allow joining without pinning the cluster CA with --discovery-token-ca-cert-hash (unsafe: trusts the network).")
	fs.StringVar(&o.installPkgPath, "install-pkg-path", "",
		"Where to get the install package (kube-linux-<arch>-v<k8s>.tar.gz): a local path, ftp://[user@]host[:port]/path (password from $EDGEADM_FTP_PASSWORD) or https:// URL.")
	fs.StringVar(&o.installPkgSHA256, "install-pkg-sha256", "", "Expected sha256 of the install package; it is verified before anything is unpacked.")
	fs.StringVar(&o.nodeName, "node-name", "", "Name of the node in the cluster. Defaults to the host name.")
	fs.StringVar(&o.nodeIP, "node-ip", "", "Address the kubelet advertises. Defaults to this host's address on the route to the API server.")
	fs.StringToStringVar(&o.nodeLabels, "node-labels", nil,
		`Labels to put on the node, as "key=value,key2=value2", besides `+phases.EdgeNodeLabel+"="+phases.EdgeNodeLabelValue+".")
	fs.StringSliceVar(&o.ignorePreflightErrors, "ignore-preflight-errors", nil,
		`Preflight checks whose errors become warnings, e.g. "Swap,Port-10250"; "all" for every check.`)
	fs.DurationVar(&o.timeout, "timeout", DefaultTimeout, "Bound of each wait: discovery, the kubelet's TLS bootstrap, the Node becoming Ready.")
	fs.BoolVar(&o.dryRun, "dry-run", false, "Check everything and print what would be done to the host, without changing anything.")
	printer.AddFlag(fs, &o.output)

	for _, p := range phases.All() {
		runner.AppendPhase(instrument(p, func() *joinData { return data }, deps))
	}
	runner.SetDataInitializer(func(c *cobra.Command, args []string) (workflow.RunData, error) {
		d, err := newJoinData(c, args, o, streams, deps)
		if err != nil {
			return nil, err
		}
		data = d
		return d, nil
	})
	runner.BindToCommand(c)
	// "edgeadm join phase <name>": the runner made these commands; they
	// finish the way the whole join does (rollback on failure, cleanup).
	var wrap func(*cobra.Command)
	wrap = func(pc *cobra.Command) {
		for _, sub := range pc.Commands() {
			wrap(sub)
		}
		if pc == c {
			return
		}
		if pc.Long == "" {
			if pc.Name() == "phase" {
				pc.Long = "Run one phase of \"edgeadm join\" on its own, with the same flags and checks of its inputs as the whole join.\n" +
					"Its changes are journalled like the whole join's; if the phase fails they are rolled back, and \"edgeadm reset\" undoes them."
			} else {
				pc.Long = pc.Short + ".\n\nThis is one phase of \"edgeadm join\" (see \"edgeadm join --help\" for the others); " +
					"it takes the join's arguments and flags. Its changes are journalled; if it fails they are rolled back."
			}
		}
		if pc.RunE == nil {
			return
		}
		orig := pc.RunE
		pc.RunE = func(cc *cobra.Command, args []string) error {
			err := orig(cc, args)
			if data == nil {
				return err
			}
			return data.finish(cc, err, false)
		}
	}
	wrap(c)
	return c
}

// instrument wraps a phase: numbered progress with its duration, the
// journal's phase name, rollback of this run when it fails, and the
// test-only kill hook.
func instrument(p workflow.Phase, data func() *joinData, deps Deps) workflow.Phase {
	run, runIf := p.Run, p.RunIf
	if run == nil {
		return p
	}
	all := phases.All()
	n, total := 0, 0
	for i, q := range all {
		if !q.Hidden {
			total++
		}
		if q.Name == p.Name {
			n = i + 1
		}
	}
	p.Run = func(c workflow.RunData) error {
		d := data()
		if runIf != nil {
			if ok, _ := runIf(c); !ok {
				d.report.phase(p.Name, "skipped", 0)
				return nil
			}
		}
		if !p.Hidden {
			fmt.Fprintf(d.streams.ErrOut, "[%d/%d] %s: %s\n", n, total, p.Name, p.Short)
		}
		d.setPhase(p.Name)
		start := time.Now()
		err := run(c)
		dur := time.Since(start)
		if err != nil {
			d.report.phase(p.Name, "failed", dur)
			return err
		}
		d.report.phase(p.Name, "done", dur)
		if !p.Hidden {
			fmt.Fprintf(d.streams.ErrOut, "[%d/%d] %s done in %s\n", n, total, p.Name, dur.Round(time.Millisecond))
		}
		if deps.Env.Getenv(KillAtEnv) == p.Name && deps.Kill != nil {
			deps.Kill()
		}
		return nil
	}
	// The wrapper decides (and reports) skipping itself.
	p.RunIf = nil
	return p
}

// finish ends a run: on failure the changes of this run are rolled back;
// the package's temporary copy is removed; the report is printed. Secrets
// are taken out of the error.
func (d *joinData) finish(c *cobra.Command, err error, wholeJoin bool) error {
	defer d.close()
	if d.unlock != nil {
		defer d.unlock()
	}
	if err != nil && !d.dryRun && d.journal != nil && d.journal.CurrentRun() != 0 {
		err = d.rollback(err)
	}
	err = d.redact(err)
	d.report.end(err)
	if wholeJoin {
		if perr := d.printReport(); perr != nil && err == nil {
			err = perr
		}
	}
	return err
}

func (d *joinData) rollback(cause error) error {
	run := d.journal.CurrentRun()
	has := false
	for _, e := range d.journal.Entries() {
		if e.Run == run {
			has = true
			break
		}
	}
	if !has {
		return cause
	}
	fmt.Fprintln(d.streams.ErrOut, "[rollback] Undoing what this run changed, newest first")
	rerr := d.journal.Rollback(context.WithoutCancel(d.ctx), rollbackOptions(d.streams.ErrOut, run))
	if rerr != nil {
		return errors.Join(cause, fmt.Errorf("the rollback was incomplete, run \"edgeadm reset\" to finish it: %w", rerr))
	}
	fmt.Fprintln(d.streams.ErrOut, "[rollback] This run's changes are undone")
	return cause
}

func (d *joinData) redact(err error) error {
	if err == nil || d.o.token == "" {
		return err
	}
	msg := err.Error()
	secrets := []string{d.o.token}
	if _, s, ok := strings.Cut(d.o.token, "."); ok && len(s) >= 8 {
		secrets = append(secrets, s)
	}
	red := msg
	for _, s := range secrets {
		red = strings.ReplaceAll(red, s, "<redacted>")
	}
	if red == msg {
		return err
	}
	return &redactedError{msg: red, err: err}
}

// redactedError shows a message with the secrets taken out, and still
// matches what it wraps (errors.Is/As, exit codes).
type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }
