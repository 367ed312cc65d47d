package testenv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

const (
	// netnsDir is where iproute2 keeps named network namespaces.
	netnsDir = "/run/netns"
	// namePrefix marks every namespace and interface this package makes, so a
	// leftover check can find them and nothing else.
	namePrefix = "ea"
	// maxNetworks bounds how many test networks may exist at once on a machine.
	maxNetworks = 250
	// unreachableMetric is higher than the kernel's connected route (metric 0), so
	// the connected route wins while the link is up and "unreachable" takes over
	// the moment it is gone.
	unreachableMetric = 4242
)

// Network is one isolated test network: a "cloud" namespace with a bridge that
// the host namespace and every edge host attach to. All its addresses are in
// 198.18.<Index>.0/24.
type Network struct {
	// Index is this network's number, unique among the networks on the machine.
	Index int
	// CloudNS is the name of the namespace the control plane runs in.
	CloudNS string
	// Subnet is this network's /24.
	Subnet netip.Prefix
	// CloudIP is the control plane's address on the bridge: the "public" address
	// edge hosts dial. The apiserver certificate does not carry it, on purpose.
	CloudIP netip.Addr
	// HostIP is the host namespace's address on the bridge, from which the test
	// process itself reaches the control plane.
	HostIP netip.Addr

	hostLink string
	links    map[string]*Link
	nextEdge int
	tornDown bool
}

// Link is the veth pair between an edge host's namespace and the cloud bridge.
type Link struct {
	// NS is the edge host's network namespace.
	NS string
	// IP is the edge host's address on the bridge.
	IP netip.Addr
	// cloudSide is the veth end attached to the bridge in the cloud namespace;
	// cutting the link downs this end, so the edge host sees its own eth0 stay up
	// the way a host behind a broken uplink does.
	cloudSide string
	net       *Network
}

// NewNetwork makes a fresh test network. The namespace name doubles as the lock
// for its index: `ip netns add` fails when the name exists, so concurrent test
// processes never share an index.
func NewNetwork(ctx context.Context) (*Network, error) {
	for i := 1; i <= maxNetworks; i++ {
		name := fmt.Sprintf("%s%d-cloud", namePrefix, i)
		if _, err := os.Stat(filepath.Join(netnsDir, name)); err == nil {
			continue
		}
		if err := run(ctx, "ip", "netns", "add", name); err != nil {
			if strings.Contains(err.Error(), "exists") {
				continue
			}
			return nil, fmt.Errorf("create the cloud network namespace: %w", err)
		}
		n := &Network{
			Index:    i,
			CloudNS:  name,
			Subnet:   netip.MustParsePrefix(fmt.Sprintf("198.18.%d.0/24", i)),
			CloudIP:  netip.MustParseAddr(fmt.Sprintf("198.18.%d.1", i)),
			HostIP:   netip.MustParseAddr(fmt.Sprintf("198.18.%d.254", i)),
			hostLink: fmt.Sprintf("%s%dh", namePrefix, i),
			links:    map[string]*Link{},
			nextEdge: 10,
		}
		if err := n.setUp(ctx); err != nil {
			return nil, errors.Join(err, n.Teardown(context.WithoutCancel(ctx)))
		}
		return n, nil
	}
	return nil, fmt.Errorf("no free test network index below %d: remove leftover namespaces named %s*-cloud (ip netns list)", maxNetworks, namePrefix)
}

func (n *Network) setUp(ctx context.Context) error {
	// The safety net goes in first: before any test address exists, the host
	// namespace already refuses to route this subnet anywhere.
	if err := run(ctx, "ip", "route", "add", "unreachable", n.Subnet.String(), "metric", fmt.Sprint(unreachableMetric)); err != nil {
		return fmt.Errorf("add the unreachable safety route: %w", err)
	}
	steps := [][]string{
		{"ip", "-n", n.CloudNS, "link", "set", "lo", "up"},
		{"ip", "-n", n.CloudNS, "link", "add", "br0", "type", "bridge"},
		{"ip", "-n", n.CloudNS, "addr", "add", n.CloudIP.String() + "/24", "dev", "br0"},
		{"ip", "-n", n.CloudNS, "link", "set", "br0", "up"},
		{"ip", "link", "add", n.hostLink, "type", "veth", "peer", "name", "host", "netns", n.CloudNS},
		{"ip", "-n", n.CloudNS, "link", "set", "host", "master", "br0", "up"},
		{"ip", "addr", "add", n.HostIP.String() + "/24", "dev", n.hostLink},
		{"ip", "link", "set", n.hostLink, "up"},
	}
	for _, s := range steps {
		if err := run(ctx, s[0], s[1:]...); err != nil {
			return fmt.Errorf("set up test network %d: %w", n.Index, err)
		}
	}
	return nil
}

// AddEdge makes a namespace for an edge host named name, with eth0 linked to the
// cloud bridge, and returns the link. The namespace has loopback and the /24
// only: no default route.
func (n *Network) AddEdge(ctx context.Context, name string) (*Link, error) {
	if _, ok := n.links[name]; ok {
		return nil, fmt.Errorf("edge host %q already exists in test network %d", name, n.Index)
	}
	if n.nextEdge >= 250 {
		return nil, fmt.Errorf("test network %d has no free edge address left", n.Index)
	}
	id := n.nextEdge
	n.nextEdge++
	l := &Link{
		NS:        fmt.Sprintf("%s%d-%s", namePrefix, n.Index, name),
		IP:        netip.MustParseAddr(fmt.Sprintf("198.18.%d.%d", n.Index, id)),
		cloudSide: fmt.Sprintf("e%d", id),
		net:       n,
	}
	// Made in the host namespace under a unique temporary name, then moved: two
	// test networks may be building edges at the same moment.
	tmp := fmt.Sprintf("%s%dt%d", namePrefix, n.Index, id)
	steps := [][]string{
		{"ip", "netns", "add", l.NS},
		{"ip", "-n", l.NS, "link", "set", "lo", "up"},
		{"ip", "link", "add", tmp, "type", "veth", "peer", "name", l.cloudSide, "netns", n.CloudNS},
		{"ip", "link", "set", tmp, "netns", l.NS},
		{"ip", "-n", l.NS, "link", "set", tmp, "name", "eth0"},
		{"ip", "-n", l.NS, "addr", "add", l.IP.String() + "/24", "dev", "eth0"},
		{"ip", "-n", l.NS, "link", "set", "eth0", "up"},
		{"ip", "-n", n.CloudNS, "link", "set", l.cloudSide, "master", "br0", "up"},
	}
	n.links[name] = l
	for _, s := range steps {
		if err := run(ctx, s[0], s[1:]...); err != nil {
			return nil, fmt.Errorf("add edge host %q to test network %d: %w", name, n.Index, err)
		}
	}
	return l, nil
}

// Cut takes the link down at the cloud side: the edge host loses the cloud.
func (l *Link) Cut(ctx context.Context) error {
	return run(ctx, "ip", "-n", l.net.CloudNS, "link", "set", l.cloudSide, "down")
}

// Restore brings a cut link back up.
func (l *Link) Restore(ctx context.Context) error {
	return run(ctx, "ip", "-n", l.net.CloudNS, "link", "set", l.cloudSide, "up")
}

// Degrade adds latency and loss to the link in both directions. It needs the
// kernel's netem qdisc; ErrNoNetem says the kernel lacks it, so a test can skip.
func (l *Link) Degrade(ctx context.Context, delay time.Duration, lossPercent float64) error {
	for _, side := range l.sides() {
		err := run(ctx, "tc", "-n", side.ns, "qdisc", "replace", "dev", side.dev, "root", "netem",
			"delay", fmt.Sprintf("%dms", delay.Milliseconds()), "loss", fmt.Sprintf("%g%%", lossPercent))
		if err != nil {
			if strings.Contains(err.Error(), "Unknown qdisc") || strings.Contains(err.Error(), "qdisc kind is unknown") {
				return fmt.Errorf("%w: %v", ErrNoNetem, err)
			}
			return fmt.Errorf("degrade link of %s: %w", l.NS, err)
		}
	}
	return nil
}

type linkSide struct{ ns, dev string }

func (l *Link) sides() []linkSide {
	return []linkSide{{l.net.CloudNS, l.cloudSide}, {l.NS, "eth0"}}
}

// Heal removes any degradation added by Degrade.
func (l *Link) Heal(ctx context.Context) error {
	var errs []error
	for _, side := range l.sides() {
		if err := run(ctx, "tc", "-n", side.ns, "qdisc", "del", "dev", side.dev, "root"); err != nil &&
			!strings.Contains(err.Error(), "No such file") && !strings.Contains(err.Error(), "Cannot delete qdisc with handle of zero") {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// ErrNoNetem means the kernel has no netem qdisc, so links cannot be degraded.
var ErrNoNetem = errors.New("kernel has no netem qdisc (sch_netem)")

// Teardown removes every namespace, link and route of the network. It keeps
// going past errors and returns them all.
func (n *Network) Teardown(ctx context.Context) error {
	if n.tornDown {
		return nil
	}
	n.tornDown = true
	var errs []error
	for _, l := range n.links {
		if err := deleteNetns(ctx, l.NS); err != nil {
			errs = append(errs, err)
		}
	}
	// Deleting the host end of the veth removes its peer too; deleting the cloud
	// namespace removes the bridge and every edge link's cloud end.
	if linkExists(ctx, "", n.hostLink) {
		if err := run(ctx, "ip", "link", "del", n.hostLink); err != nil {
			errs = append(errs, err)
		}
	}
	if err := deleteNetns(ctx, n.CloudNS); err != nil {
		errs = append(errs, err)
	}
	// The safety route goes last, after every test address is gone.
	if err := run(ctx, "ip", "route", "del", "unreachable", n.Subnet.String(), "metric", fmt.Sprint(unreachableMetric)); err != nil &&
		!strings.Contains(err.Error(), "No such process") {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func deleteNetns(ctx context.Context, name string) error {
	if _, err := os.Stat(filepath.Join(netnsDir, name)); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err := run(ctx, "ip", "netns", "del", name); err != nil {
		return fmt.Errorf("delete network namespace %s: %w", name, err)
	}
	return nil
}

func linkExists(ctx context.Context, ns, name string) bool {
	args := []string{"link", "show", name}
	if ns != "" {
		args = append([]string{"-n", ns}, args...)
	}
	return run(ctx, "ip", args...) == nil
}

// InNetns returns the argv that runs argv inside the named network namespace.
// nsenter is used rather than `ip netns exec`, which remounts /sys and breaks the
// kubelet's cgroup discovery.
func InNetns(ns string, argv ...string) []string {
	return append([]string{"nsenter", "--net=" + filepath.Join(netnsDir, ns), "--"}, argv...)
}

// run runs a short command and returns its combined output in the error when it
// fails, so a failure says what the tool said.
func run(ctx context.Context, name string, args ...string) error {
	_, err := output(ctx, name, args...)
	return err
}

func output(ctx context.Context, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdout = &out
	cmd.Stderr = &out
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(out.String()))
	}
	return out.String(), nil
}
