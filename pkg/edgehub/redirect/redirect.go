// Package redirect keeps the edge node's redirect of the kubernetes Service
// to edgehub: pods using the in-cluster configuration dial the Service's
// ClusterIP:443, and on an edge node that connection must reach edgehub (which
// answers offline too), not the apiserver behind the link.
//
// Everything lives in one chain of edgehub's own, Chain, in the nat table (a
// DNAT per Service IP to edgehub's in-cluster address) and in the filter table
// (edgehub's in-cluster port accepts only redirected connections), jumped to
// first from PREROUTING and OUTPUT (nat) and INPUT (filter), so kube-proxy's
// rules for the same Service come after ours. edgehub (cmd/edgehub) installs
// it and removes it on a clean stop; edgeadm reset removes it too, with the
// same Remove.
package redirect

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os/exec"
	"strconv"
	"strings"
)

// Chain is edgehub's chain, in the nat and the filter table.
const Chain = "EDGEHUB-KUBERNETES"

// jumpComment marks the jumps to Chain, so a person reading iptables -S
// knows whose they are.
const jumpComment = "edgehub: kubernetes Service to the node's edgehub"

// Runner runs an iptables binary ("iptables" or "ip6tables") with args and
// returns its standard output; a non-zero exit is an error.
type Runner func(ctx context.Context, bin string, args ...string) (string, error)

// Rule is what is redirected: connections to ServiceIPs:ServicePort (TCP)
// go to To, edgehub's in-cluster listen address. Service IPs of the other
// address family than To are left alone (a DNAT cannot cross families).
type Rule struct {
	ServiceIPs  []netip.Addr
	ServicePort uint16
	To          netip.AddrPort
}

// binFor is the iptables binary of addr's family.
func binFor(a netip.Addr) string {
	if a.Unmap().Is4() {
		return "iptables"
	}
	return "ip6tables"
}

// Targets are the Service IPs the rule redirects (those of To's family).
func (r Rule) Targets() []netip.Addr {
	var out []netip.Addr
	for _, ip := range r.ServiceIPs {
		if binFor(ip) == binFor(r.To.Addr()) {
			out = append(out, ip.Unmap())
		}
	}
	return out
}

// Install makes Chain hold exactly r (replacing what it held) and puts the
// jumps to it first. It is idempotent; call it again to move our jumps back
// to the front after someone prepended theirs.
func Install(ctx context.Context, run Runner, r Rule) error {
	targets := r.Targets()
	if len(targets) == 0 {
		return fmt.Errorf("redirect: none of the Service IPs %v is of the family of edgehub's in-cluster address %s", r.ServiceIPs, r.To)
	}
	if r.ServicePort == 0 || !r.To.IsValid() || r.To.Port() == 0 {
		return fmt.Errorf("redirect: Service port %d and edgehub address %s must be set", r.ServicePort, r.To)
	}
	bin := binFor(r.To.Addr())
	host := func(a netip.Addr) string { return netip.PrefixFrom(a, a.BitLen()).String() }
	for _, table := range []string{"nat", "filter"} {
		if err := ensureChain(ctx, run, bin, table); err != nil {
			return err
		}
		if _, err := run(ctx, bin, "-w", "-t", table, "-F", Chain); err != nil {
			return fmt.Errorf("redirect: flush %s chain %s: %w", table, Chain, err)
		}
	}
	for _, ip := range targets {
		args := []string{"-w", "-t", "nat", "-A", Chain, "-d", host(ip), "-p", "tcp", "--dport", strconv.Itoa(int(r.ServicePort)),
			"-m", "comment", "--comment", "edgehub: kubernetes Service " + ip.String(), "-j", "DNAT", "--to-destination", r.To.String()}
		if _, err := run(ctx, bin, args...); err != nil {
			return fmt.Errorf("redirect: DNAT %s to %s: %w", ip, r.To, err)
		}
	}
	// edgehub's in-cluster port answers only what was redirected to it: it
	// is on the node's address, and the network at large has no business
	// there.
	reject := []string{"-w", "-t", "filter", "-A", Chain, "-d", host(r.To.Addr()), "-p", "tcp", "--dport", strconv.Itoa(int(r.To.Port())),
		"-m", "conntrack", "!", "--ctstate", "DNAT", "-m", "comment", "--comment", "edgehub: in-cluster port only for the kubernetes Service",
		"-j", "REJECT", "--reject-with", "tcp-reset"}
	if _, err := run(ctx, bin, reject...); err != nil {
		return fmt.Errorf("redirect: restrict %s to redirected connections: %w", r.To, err)
	}
	return EnsureFirst(ctx, run, bin)
}

// hooks are the built-in chains that jump to Chain, per table.
var hooks = []struct{ table, chain string }{{"nat", "PREROUTING"}, {"nat", "OUTPUT"}, {"filter", "INPUT"}}

func jumpSpec() []string { return []string{"-m", "comment", "--comment", jumpComment, "-j", Chain} }

// EnsureFirst makes the jump to Chain the first rule of each hook chain,
// touching nothing when it already is.
func EnsureFirst(ctx context.Context, run Runner, bin string) error {
	for _, h := range hooks {
		rules, err := listRules(ctx, run, bin, h.table, h.chain)
		if err != nil {
			return err
		}
		jumps := 0
		for _, r := range rules {
			if jumpsToChain(r) {
				jumps++
			}
		}
		if len(rules) > 0 && jumpsToChain(rules[0]) && jumps == 1 {
			continue
		}
		if err := deleteJumps(ctx, run, bin, h.table, h.chain, rules); err != nil {
			return err
		}
		args := append([]string{"-w", "-t", h.table, "-I", h.chain, "1"}, jumpSpec()...)
		if _, err := run(ctx, bin, args...); err != nil {
			return fmt.Errorf("redirect: jump to %s first in %s %s: %w", Chain, h.table, h.chain, err)
		}
	}
	return nil
}

// Remove deletes the jumps to Chain and Chain itself, in both tables and
// both address families. What is not there is not an error (a second
// Remove, a host without ip6tables).
func Remove(ctx context.Context, run Runner) error {
	var errs []error
	for _, bin := range []string{"iptables", "ip6tables"} {
		for _, h := range hooks {
			rules, err := listRules(ctx, run, bin, h.table, h.chain)
			if err != nil {
				continue // no such binary or table: nothing of ours there
			}
			if err := deleteJumps(ctx, run, bin, h.table, h.chain, rules); err != nil {
				errs = append(errs, err)
			}
		}
		for _, table := range []string{"nat", "filter"} {
			if !chainExists(ctx, run, bin, table) {
				continue
			}
			if _, err := run(ctx, bin, "-w", "-t", table, "-F", Chain); err != nil {
				errs = append(errs, fmt.Errorf("redirect: flush %s %s chain %s: %w", bin, table, Chain, err))
				continue
			}
			if _, err := run(ctx, bin, "-w", "-t", table, "-X", Chain); err != nil {
				errs = append(errs, fmt.Errorf("redirect: delete %s %s chain %s: %w", bin, table, Chain, err))
			}
		}
	}
	return errors.Join(errs...)
}

// Installed reports whether bin's nat table has Chain.
func Installed(ctx context.Context, run Runner, bin string) bool {
	return chainExists(ctx, run, bin, "nat")
}

func chainExists(ctx context.Context, run Runner, bin, table string) bool {
	out, err := run(ctx, bin, "-w", "-t", table, "-S", Chain)
	return err == nil && strings.Contains(out, "-N "+Chain)
}

func ensureChain(ctx context.Context, run Runner, bin, table string) error {
	if chainExists(ctx, run, bin, table) {
		return nil
	}
	if _, err := run(ctx, bin, "-w", "-t", table, "-N", Chain); err != nil {
		return fmt.Errorf("redirect: create %s chain %s: %w", table, Chain, err)
	}
	return nil
}

// listRules returns the "-A" lines of chain, in order, as fields.
func listRules(ctx context.Context, run Runner, bin, table, chain string) ([][]string, error) {
	out, err := run(ctx, bin, "-w", "-t", table, "-S", chain)
	if err != nil {
		return nil, fmt.Errorf("redirect: list %s %s: %w", table, chain, err)
	}
	var rules [][]string
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		if len(f) >= 2 && f[0] == "-A" && f[1] == chain {
			rules = append(rules, f)
		}
	}
	return rules, nil
}

func jumpsToChain(fields []string) bool {
	for i := 0; i+1 < len(fields); i++ {
		if (fields[i] == "-j" || fields[i] == "-g") && fields[i+1] == Chain {
			return true
		}
	}
	return false
}

// deleteJumps deletes every rule of chain that jumps to Chain, by number,
// from the last so the numbers of the others do not move.
func deleteJumps(ctx context.Context, run Runner, bin, table, chain string, rules [][]string) error {
	for i := len(rules) - 1; i >= 0; i-- {
		if !jumpsToChain(rules[i]) {
			continue
		}
		if _, err := run(ctx, bin, "-w", "-t", table, "-D", chain, strconv.Itoa(i+1)); err != nil {
			return fmt.Errorf("redirect: delete jump to %s from %s %s: %w", Chain, table, chain, err)
		}
	}
	return nil
}

// Exec runs the host's iptables binaries: the Runner of edgehub and of
// edgeadm reset.
func Exec(ctx context.Context, bin string, args ...string) (string, error) {
	var out, errb bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("%s %s: %w: %s", bin, strings.Join(args, " "), err, strings.TrimSpace(errb.String()))
	}
	return out.String(), nil
}
