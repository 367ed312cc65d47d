package main

import (
	"slices"
	"strings"
	"testing"
)

func TestTakeConfFlag(t *testing.T) {
	want := []string{"coredns", "-dns.port", "53"}
	for _, args := range [][]string{
		{"coredns", "-conf", "/c/Corefile", "-dns.port", "53"},
		{"coredns", "--conf", "/c/Corefile", "-dns.port", "53"},
		{"coredns", "-conf=/c/Corefile", "-dns.port", "53"},
		{"coredns", "-dns.port", "53", "--conf=/c/Corefile"},
	} {
		conf, rest := takeConfFlag(args)
		if conf != "/c/Corefile" || !slices.Equal(rest, want) {
			t.Errorf("%q: conf %q, rest %q; want /c/Corefile, %q", args, conf, rest, want)
		}
	}
}

const corefile = `.:53 {
    kubernetes cluster.local
    forward . /etc/resolv.conf
    forward example.org 192.0.2.1
    forward example.net /empty /full
    cache 30
}
`

func TestUpstreamlessDropsOnlyForwardsToEmptyResolvers(t *testing.T) {
	full := func(f string) bool { return f == "/full" }
	out, dropped := upstreamless([]byte(corefile), full)
	if strings.Contains(string(out), "/etc/resolv.conf") {
		t.Errorf("the forward to an empty resolv.conf is kept:\n%s", out)
	}
	for _, keep := range []string{"forward example.org 192.0.2.1", "forward example.net /empty /full", "kubernetes cluster.local", "cache 30"} {
		if !strings.Contains(string(out), keep) {
			t.Errorf("%q is gone:\n%s", keep, out)
		}
	}
	if len(dropped) != 1 || dropped[0].file != "/etc/resolv.conf" {
		t.Errorf("dropped %+v, want the one forward to /etc/resolv.conf", dropped)
	}

	all := func(string) bool { return true }
	if out, dropped := upstreamless([]byte(corefile), all); string(out) != corefile || len(dropped) != 0 {
		t.Errorf("with every resolver serving, the Corefile changed (dropped %+v):\n%s", dropped, out)
	}
}
