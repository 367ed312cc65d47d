package journal

import (
	"reflect"
	"strings"
	"testing"
)

func TestSplitRuleQuoting(t *testing.T) {
	for in, want := range map[string][]string{
		`INPUT -j KUBE-FIREWALL`: {"INPUT", "-j", "KUBE-FIREWALL"},
		`POSTROUTING -m comment --comment "name: \"cbr0\" id: \"x\"" -j CNI-abc`: {"POSTROUTING", "-m", "comment", "--comment", `name: "cbr0" id: "x"`, "-j", "CNI-abc"},
		`X  -m comment --comment "a\\b" -j Y`:                                    {"X", "-m", "comment", "--comment", `a\b`, "-j", "Y"},
		`X --comment ""`:                                                         {"X", "--comment", ""},
	} {
		got, err := splitRule(in)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("splitRule(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := splitRule(`X --comment "open`); err == nil {
		t.Error("unterminated quote accepted")
	}
}

func TestChainCleanupTouchesOnlyNewOwnedChains(t *testing.T) {
	before, err := parseIptablesSave(iptablesBefore)
	if err != nil {
		t.Fatal(err)
	}
	after, err := parseIptablesSave(iptablesAfter)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, args := range chainCleanup(after, chainsByTable(before)) {
		got = append(got, strings.Join(args, " "))
	}
	for _, g := range got {
		if strings.Contains(g, "USER-CHAIN") || strings.Contains(g, "KUBE-OLD") {
			t.Errorf("cleanup touches a chain that existed before: %s", g)
		}
	}
	want := []string{
		"-t filter -D INPUT -j KUBE-FIREWALL",
		"-t filter -D FORWARD -m comment --comment CNI firewall plugin rules -j CNI-FORWARD",
		`-t nat -D POSTROUTING -s 10.244.0.0/24 -m comment --comment name: "cbr0" id: "x" -j CNI-abc`,
		"-t filter -F KUBE-FIREWALL", "-t filter -F CNI-FORWARD", "-t nat -F CNI-abc",
		"-t filter -X KUBE-FIREWALL", "-t filter -X CNI-FORWARD", "-t nat -X CNI-abc",
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("plan:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestParseIptablesSaveRejectsGarbage(t *testing.T) {
	if _, err := parseIptablesSave("-A INPUT -j X\n"); err == nil {
		t.Error("a rule outside a table was accepted")
	}
	if _, err := parseIptablesSave("*filter\nwhat is this\n"); err == nil {
		t.Error("an unknown line was accepted")
	}
}
