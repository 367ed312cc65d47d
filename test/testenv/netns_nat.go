package testenv

import (
	"context"
	"fmt"
	"net/netip"
)

// NATEdge is an edge host namespace behind a NAT namespace, the way most edge
// sites reach the cloud: the NAT has the public address on the cloud bridge
// and masquerades the edge's traffic; from the cloud only replies to
// connections the edge opened get back in. The cloud cannot dial the edge.
type NATEdge struct {
	// Link is the edge host's side: Link.NS is its namespace and Link.IP its
	// private address. Cut and Restore act on the NAT's uplink.
	*Link
	// NATNS is the NAT's namespace.
	NATNS string
	// PublicIP is the NAT's address on the cloud bridge: the source address
	// the cloud sees for everything the edge sends.
	PublicIP netip.Addr
	// LANGateway is the NAT's address on the edge's private subnet.
	LANGateway netip.Addr
}

// AddNATEdge makes an edge host namespace named name behind its own NAT
// namespace. The edge's private subnet is 10.255.<id>.0/24, routed only
// towards this network's /24 (no default route, so no test traffic can leave
// the machine); the NAT forwards nothing else either.
func (n *Network) AddNATEdge(ctx context.Context, name string) (*NATEdge, error) {
	if _, ok := n.links[name]; ok {
		return nil, fmt.Errorf("edge host %q already exists in test network %d", name, n.Index)
	}
	if n.nextEdge >= 250 {
		return nil, fmt.Errorf("test network %d has no free edge address left", n.Index)
	}
	id := n.nextEdge
	n.nextEdge++
	e := &NATEdge{
		Link: &Link{
			NS:        fmt.Sprintf("%s%d-%s", namePrefix, n.Index, name),
			IP:        netip.MustParseAddr(fmt.Sprintf("10.255.%d.2", id)),
			cloudSide: fmt.Sprintf("e%d", id),
			net:       n,
		},
		NATNS:      fmt.Sprintf("%s%d-%s-nat", namePrefix, n.Index, name),
		PublicIP:   netip.MustParseAddr(fmt.Sprintf("198.18.%d.%d", n.Index, id)),
		LANGateway: netip.MustParseAddr(fmt.Sprintf("10.255.%d.1", id)),
	}
	// Registered before anything is made, so Teardown removes whatever part
	// exists when a step fails.
	n.links[name] = e.Link
	n.links[name+"-nat"] = &Link{NS: e.NATNS, net: n}

	wanTmp := fmt.Sprintf("%s%dw%d", namePrefix, n.Index, id)
	lanTmp := fmt.Sprintf("%s%dl%d", namePrefix, n.Index, id)
	nat := func(argv ...string) []string { return InNetns(e.NATNS, argv...) }
	subnet := n.Subnet.String()
	steps := [][]string{
		{"ip", "netns", "add", e.NATNS},
		{"ip", "netns", "add", e.NS},
		{"ip", "-n", e.NATNS, "link", "set", "lo", "up"},
		{"ip", "-n", e.NS, "link", "set", "lo", "up"},
		// WAN: NAT <-> cloud bridge, the public address.
		{"ip", "link", "add", wanTmp, "type", "veth", "peer", "name", e.cloudSide, "netns", n.CloudNS},
		{"ip", "link", "set", wanTmp, "netns", e.NATNS},
		{"ip", "-n", e.NATNS, "link", "set", wanTmp, "name", "wan"},
		{"ip", "-n", e.NATNS, "addr", "add", e.PublicIP.String() + "/24", "dev", "wan"},
		{"ip", "-n", e.NATNS, "link", "set", "wan", "up"},
		{"ip", "-n", n.CloudNS, "link", "set", e.cloudSide, "master", "br0", "up"},
		// LAN: NAT <-> edge host, the private subnet.
		{"ip", "link", "add", lanTmp, "type", "veth", "peer", "name", "lan", "netns", e.NATNS},
		{"ip", "link", "set", lanTmp, "netns", e.NS},
		{"ip", "-n", e.NS, "link", "set", lanTmp, "name", "eth0"},
		{"ip", "-n", e.NS, "addr", "add", e.IP.String() + "/24", "dev", "eth0"},
		{"ip", "-n", e.NS, "link", "set", "eth0", "up"},
		{"ip", "-n", e.NATNS, "addr", "add", e.LANGateway.String() + "/24", "dev", "lan"},
		{"ip", "-n", e.NATNS, "link", "set", "lan", "up"},
		{"ip", "-n", e.NS, "route", "add", subnet, "via", e.LANGateway.String()},
		// The NAT: forward the edge's connections to the cloud's /24 only,
		// masquerade them, and let back only what belongs to them.
		nat("sysctl", "-q", "-w", "net.ipv4.ip_forward=1"),
		nat("iptables", "-P", "FORWARD", "DROP"),
		nat("iptables", "-A", "FORWARD", "-i", "lan", "-o", "wan", "-d", subnet, "-j", "ACCEPT"),
		nat("iptables", "-A", "FORWARD", "-i", "wan", "-o", "lan", "-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED", "-j", "ACCEPT"),
		nat("iptables", "-t", "nat", "-A", "POSTROUTING", "-o", "wan", "-j", "MASQUERADE"),
	}
	for _, s := range steps {
		if err := run(ctx, s[0], s[1:]...); err != nil {
			return nil, fmt.Errorf("add edge host %q behind a NAT to test network %d: %w", name, n.Index, err)
		}
	}
	return e, nil
}
