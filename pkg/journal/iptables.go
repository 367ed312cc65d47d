package journal

import (
	"fmt"
	"strings"
)

// Chain name prefixes of what the kubelet, kube-proxy and CNI plugins create.
// Only chains with these prefixes that did not exist at join time are removed:
// a user's own chains, and theirs that existed before, are never touched.
var ownedChainPrefixes = []string{"KUBE-", "CNI-", "FLANNEL-"}

func ownedChain(name string) bool {
	for _, p := range ownedChainPrefixes {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

// iptablesTable is one table of an iptables-save dump.
type iptablesTable struct {
	Name   string
	Chains []string
	Rules  []iptablesRule
}

// iptablesRule is one "-A CHAIN args..." line.
type iptablesRule struct {
	Chain string
	Args  []string
}

// target is the chain the rule jumps or goes to, if any.
func (r iptablesRule) target() string {
	for i := 0; i+1 < len(r.Args); i++ {
		if r.Args[i] == "-j" || r.Args[i] == "--jump" || r.Args[i] == "-g" || r.Args[i] == "--goto" {
			return r.Args[i+1]
		}
	}
	return ""
}

// parseIptablesSave reads the output of iptables-save.
func parseIptablesSave(data string) ([]iptablesTable, error) {
	var (
		tables []iptablesTable
		cur    *iptablesTable
	)
	for n, line := range strings.Split(data, "\n") {
		line = strings.TrimRight(line, "\r")
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, "*"):
			tables = append(tables, iptablesTable{Name: line[1:]})
			cur = &tables[len(tables)-1]
		case line == "COMMIT":
			cur = nil
		case cur == nil:
			return nil, fmt.Errorf("iptables-save line %d outside a table: %q", n+1, line)
		case strings.HasPrefix(line, ":"):
			f := strings.Fields(line[1:])
			if len(f) == 0 {
				return nil, fmt.Errorf("iptables-save line %d: empty chain", n+1)
			}
			cur.Chains = append(cur.Chains, f[0])
		case strings.HasPrefix(line, "-A "):
			args, err := splitRule(line[3:])
			if err != nil {
				return nil, fmt.Errorf("iptables-save line %d: %w", n+1, err)
			}
			if len(args) == 0 {
				return nil, fmt.Errorf("iptables-save line %d: rule without chain", n+1)
			}
			cur.Rules = append(cur.Rules, iptablesRule{Chain: args[0], Args: args[1:]})
		default:
			return nil, fmt.Errorf("iptables-save line %d not understood: %q", n+1, line)
		}
	}
	return tables, nil
}

// splitRule splits a rule the way iptables-save quotes it: words separated
// by spaces, double quotes around words with spaces, \" and \\ inside them.
func splitRule(s string) ([]string, error) {
	var (
		args    []string
		cur     strings.Builder
		inWord  bool
		inQuote bool
	)
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case inQuote && c == '\\' && i+1 < len(s) && (s[i+1] == '"' || s[i+1] == '\\'):
			cur.WriteByte(s[i+1])
			i++
		case c == '"':
			inQuote = !inQuote
			inWord = true
		case c == ' ' && !inQuote:
			if inWord {
				args = append(args, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteByte(c)
			inWord = true
		}
	}
	if inQuote {
		return nil, fmt.Errorf("unterminated quote in %q", s)
	}
	if inWord {
		args = append(args, cur.String())
	}
	return args, nil
}

// chainCleanup is the plan to remove the chains created since a snapshot:
// first every rule that jumps to one of them from a chain that stays, then
// each of them flushed, then each deleted.
func chainCleanup(tables []iptablesTable, before map[string][]string) [][]string {
	var deletes, flushes, removes [][]string
	for _, t := range tables {
		existed := map[string]bool{}
		for _, c := range before[t.Name] {
			existed[c] = true
		}
		created := map[string]bool{}
		for _, c := range t.Chains {
			if ownedChain(c) && !existed[c] {
				created[c] = true
				flushes = append(flushes, []string{"-t", t.Name, "-F", c})
				removes = append(removes, []string{"-t", t.Name, "-X", c})
			}
		}
		for _, r := range t.Rules {
			if !created[r.Chain] && created[r.target()] {
				deletes = append(deletes, append([]string{"-t", t.Name, "-D", r.Chain}, r.Args...))
			}
		}
	}
	return append(append(deletes, flushes...), removes...)
}

// chainsByTable is what a snapshot keeps of a dump.
func chainsByTable(tables []iptablesTable) map[string][]string {
	m := map[string][]string{}
	for _, t := range tables {
		m[t.Name] = append([]string{}, t.Chains...)
	}
	return m
}
