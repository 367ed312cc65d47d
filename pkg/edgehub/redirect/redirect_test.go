package redirect

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// fakeTables is iptables in memory: enough of -N -F -X -A -I -D -S to run
// Install and Remove against, with every call logged.
type fakeTables struct {
	chains map[string][]string // "bin/table/chain" -> rules (args after the chain name)
	calls  []string
	noIP6  bool
}

func newFake() *fakeTables {
	f := &fakeTables{chains: map[string][]string{}}
	for _, bin := range []string{"iptables", "ip6tables"} {
		for _, c := range []string{"nat/PREROUTING", "nat/OUTPUT", "nat/POSTROUTING", "filter/INPUT", "filter/FORWARD", "filter/OUTPUT"} {
			f.chains[bin+"/"+c] = nil
		}
	}
	return f
}

func (f *fakeTables) run(_ context.Context, bin string, args ...string) (string, error) {
	f.calls = append(f.calls, bin+" "+strings.Join(args, " "))
	if bin == "ip6tables" && f.noIP6 {
		return "", fmt.Errorf("exec: ip6tables: not found")
	}
	if len(args) < 5 || args[0] != "-w" || args[1] != "-t" {
		return "", fmt.Errorf("unexpected call %v", args)
	}
	table, op, chain, rest := args[2], args[3], args[4], args[5:]
	key := bin + "/" + table + "/" + chain
	rules, ok := f.chains[key]
	if op != "-N" && !ok {
		return "", fmt.Errorf("iptables: No chain/target/match by that name")
	}
	switch op {
	case "-N":
		if ok {
			return "", fmt.Errorf("iptables: Chain already exists")
		}
		f.chains[key] = nil
	case "-F":
		f.chains[key] = nil
	case "-X":
		if len(rules) > 0 {
			return "", fmt.Errorf("iptables: Directory not empty")
		}
		delete(f.chains, key)
	case "-A":
		f.chains[key] = append(rules, strings.Join(rest, " "))
	case "-I":
		n, _ := strconv.Atoi(rest[0])
		f.chains[key] = slices.Insert(rules, n-1, strings.Join(rest[1:], " "))
	case "-D":
		n, err := strconv.Atoi(rest[0])
		if err != nil || n < 1 || n > len(rules) {
			return "", fmt.Errorf("iptables: Index of deletion too big")
		}
		f.chains[key] = slices.Delete(rules, n-1, n)
	case "-S":
		var b strings.Builder
		fmt.Fprintf(&b, "-N %s\n", chain)
		for _, r := range rules {
			fmt.Fprintf(&b, "-A %s %s\n", chain, r)
		}
		return b.String(), nil
	default:
		return "", fmt.Errorf("unexpected op %s", op)
	}
	return "", nil
}

func (f *fakeTables) rules(bin, table, chain string) []string {
	return f.chains[bin+"/"+table+"/"+chain]
}

func TestInstallPutsOurJumpsFirstAndIsIdempotent(t *testing.T) {
	f := newFake()
	ctx := context.Background()
	// kube-proxy got there first, with its own prepended jump.
	f.chains["iptables/nat/PREROUTING"] = []string{"-m comment --comment kube-proxy -j KUBE-SERVICES"}
	f.chains["iptables/nat/OUTPUT"] = []string{"-j KUBE-SERVICES"}
	r := Rule{
		ServiceIPs:  []netip.Addr{netip.MustParseAddr("10.96.0.1"), netip.MustParseAddr("fd00::1")},
		ServicePort: 443,
		To:          netip.MustParseAddrPort("192.168.7.2:10270"),
	}
	if err := Install(ctx, f.run, r); err != nil {
		t.Fatal(err)
	}
	for _, h := range hooks {
		got := f.rules("iptables", h.table, h.chain)
		if len(got) == 0 || !strings.HasSuffix(got[0], "-j "+Chain) {
			t.Errorf("%s %s: first rule %v, want the jump to %s", h.table, h.chain, got, Chain)
		}
	}
	if got := f.rules("iptables", "nat", "PREROUTING"); len(got) != 2 || got[1] != "-m comment --comment kube-proxy -j KUBE-SERVICES" {
		t.Errorf("kube-proxy's jump must stay, after ours: %v", got)
	}
	nat := f.rules("iptables", "nat", Chain)
	if len(nat) != 1 || !strings.Contains(nat[0], "-d 10.96.0.1/32 -p tcp --dport 443") || !strings.HasSuffix(nat[0], "-j DNAT --to-destination 192.168.7.2:10270") {
		t.Errorf("nat %s = %v, want one DNAT of 10.96.0.1:443 to 192.168.7.2:10270 (the IPv6 Service IP left alone)", Chain, nat)
	}
	filter := f.rules("iptables", "filter", Chain)
	if len(filter) != 1 || !strings.Contains(filter[0], "-d 192.168.7.2/32 -p tcp --dport 10270 -m conntrack ! --ctstate DNAT") || !strings.HasSuffix(filter[0], "-j REJECT --reject-with tcp-reset") {
		t.Errorf("filter %s = %v, want edgehub's port rejecting what was not redirected", Chain, filter)
	}
	if _, ok := f.chains["ip6tables/nat/"+Chain]; ok {
		t.Error("an IPv4 edgehub address made an ip6tables chain")
	}

	// Again: the chains are rebuilt the same, the jumps are not touched.
	before := len(f.calls)
	if err := Install(ctx, f.run, r); err != nil {
		t.Fatal(err)
	}
	for _, c := range f.calls[before:] {
		if strings.Contains(c, " -I ") || strings.Contains(c, " -D ") {
			t.Errorf("second Install moved a jump: %s", c)
		}
	}
	if got := f.rules("iptables", "nat", "PREROUTING"); len(got) != 2 {
		t.Errorf("second Install: PREROUTING %v", got)
	}

	// kube-proxy prepends again (a restart): EnsureFirst moves ours back.
	f.chains["iptables/nat/PREROUTING"] = slices.Insert(f.rules("iptables", "nat", "PREROUTING"), 0, "-j KUBE-SERVICES")
	if err := EnsureFirst(ctx, f.run, "iptables"); err != nil {
		t.Fatal(err)
	}
	got := f.rules("iptables", "nat", "PREROUTING")
	n := 0
	for _, r := range got {
		if strings.HasSuffix(r, "-j "+Chain) {
			n++
		}
	}
	if !strings.HasSuffix(got[0], "-j "+Chain) || n != 1 || len(got) != 3 {
		t.Errorf("after EnsureFirst PREROUTING = %v, want our one jump first and both of kube-proxy's after", got)
	}
}

func TestRemoveLeavesOthersAndIsIdempotent(t *testing.T) {
	f := newFake()
	f.noIP6 = true
	ctx := context.Background()
	f.chains["iptables/nat/PREROUTING"] = []string{"-j KUBE-SERVICES"}
	f.chains["iptables/filter/INPUT"] = []string{"-j KUBE-FIREWALL"}
	r := Rule{ServiceIPs: []netip.Addr{netip.MustParseAddr("10.96.0.1")}, ServicePort: 443, To: netip.MustParseAddrPort("10.0.0.5:10270")}
	if err := Install(ctx, f.run, r); err != nil {
		t.Fatal(err)
	}
	if !Installed(ctx, f.run, "iptables") {
		t.Fatal("Installed is false after Install")
	}
	for range 2 {
		if err := Remove(ctx, f.run); err != nil {
			t.Fatalf("Remove: %v", err)
		}
	}
	if Installed(ctx, f.run, "iptables") {
		t.Error("Installed is true after Remove")
	}
	for key, rules := range f.chains {
		if strings.HasSuffix(key, "/"+Chain) {
			t.Errorf("%s still exists", key)
		}
		for _, r := range rules {
			if strings.Contains(r, Chain) {
				t.Errorf("%s still jumps to %s: %s", key, Chain, r)
			}
		}
	}
	if got := f.rules("iptables", "nat", "PREROUTING"); !slices.Equal(got, []string{"-j KUBE-SERVICES"}) {
		t.Errorf("PREROUTING = %v, want kube-proxy's jump untouched", got)
	}
	if got := f.rules("iptables", "filter", "INPUT"); !slices.Equal(got, []string{"-j KUBE-FIREWALL"}) {
		t.Errorf("INPUT = %v, want the firewall's jump untouched", got)
	}
}

func TestInstallRefusesNothingToRedirect(t *testing.T) {
	f := newFake()
	err := Install(context.Background(), f.run, Rule{ServiceIPs: []netip.Addr{netip.MustParseAddr("fd00::1")}, ServicePort: 443, To: netip.MustParseAddrPort("10.0.0.5:10270")})
	if err == nil || !strings.Contains(err.Error(), "family") {
		t.Fatalf("an IPv6-only Service with an IPv4 edgehub: err %v, want one naming the family", err)
	}
	if len(f.calls) != 0 {
		t.Errorf("nothing may change on a refused Install; calls: %v", f.calls)
	}
}
