package egress

import "net/netip"

// special is one entry of the IANA IPv4 or IPv6 Special-Purpose Address
// Registry (RFC 6890 and its updates), or a range outside them that is
// not global unicast either (multicast, the deprecated IPv6 forms).
type special struct {
	prefix netip.Prefix
	name   string
	// reachable is the registry's "Globally Reachable" column. Every entry
	// here is blocked whatever it says: see the package comment for why the
	// few reachable ones are blocked too.
	reachable bool
	// inside is an address in the range and outside one just beyond it,
	// both used by the tests; outside is zero where no neighbour is
	// meaningful (the range borders another blocked one).
	inside, outside string
}

func entry(prefix, name string, reachable bool, inside, outside string) special {
	return special{prefix: netip.MustParsePrefix(prefix), name: name, reachable: reachable, inside: inside, outside: outside}
}

// registry lists every range the bridge never calls. Ranges whose
// embedded IPv4 address decides instead (IPv4-mapped, the NAT64
// well-known prefix, 6to4) are in embedded, not here.
var registry = []special{
	// IPv4 Special-Purpose Address Registry.
	entry("0.0.0.0/8", "this network", false, "0.1.2.3", "1.0.0.1"),
	entry("10.0.0.0/8", "private use", false, "10.255.0.1", "11.0.0.1"),
	entry("100.64.0.0/10", "shared address space (carrier-grade NAT)", false, "100.127.255.254", "100.128.0.1"),
	entry("127.0.0.0/8", "loopback", false, "127.1.2.3", "128.0.0.1"),
	entry("169.254.0.0/16", "link local", false, "169.254.169.254", "169.255.0.1"),
	entry("172.16.0.0/12", "private use", false, "172.31.255.254", "172.32.0.1"),
	// 192.0.0.0/24 holds 192.0.0.9 (PCP anycast) and 192.0.0.10 (TURN
	// anycast), which the registry marks reachable; the whole /24 is blocked.
	entry("192.0.0.0/24", "IETF protocol assignments", false, "192.0.0.9", "192.0.1.1"),
	entry("192.0.2.0/24", "documentation (TEST-NET-1)", false, "192.0.2.1", "192.0.3.1"),
	entry("192.31.196.0/24", "AS112-v4", true, "192.31.196.1", "192.31.197.1"),
	entry("192.52.193.0/24", "AMT", true, "192.52.193.1", "192.52.194.1"),
	entry("192.88.99.0/24", "deprecated 6to4 relay anycast", false, "192.88.99.1", "192.88.100.1"),
	entry("192.168.0.0/16", "private use", false, "192.168.1.1", "192.169.0.1"),
	entry("192.175.48.0/24", "direct delegation AS112 service", true, "192.175.48.1", "192.175.49.1"),
	entry("198.18.0.0/15", "benchmarking", false, "198.19.255.254", "198.20.0.1"),
	entry("198.51.100.0/24", "documentation (TEST-NET-2)", false, "198.51.100.1", "198.51.101.1"),
	entry("203.0.113.0/24", "documentation (TEST-NET-3)", false, "203.0.113.1", "203.0.114.1"),
	entry("224.0.0.0/4", "multicast", false, "239.255.255.250", "223.255.255.254"),
	entry("240.0.0.0/4", "reserved", false, "250.1.2.3", ""),
	entry("255.255.255.255/32", "limited broadcast", false, "255.255.255.255", ""),

	// IPv6 Special-Purpose Address Registry.
	entry("::1/128", "loopback", false, "::1", ""),
	entry("::/128", "unspecified", false, "::", ""),
	entry("::/96", "IPv4-compatible (deprecated, RFC 4291)", false, "::127.0.0.1", ""),
	entry("::ffff:0:0:0/96", "IPv4-translated (RFC 2765)", false, "::ffff:0:7f00:1", ""),
	entry("64:ff9b:1::/48", "local-use IPv4/IPv6 translation", false, "64:ff9b:1::a00:1", ""),
	entry("100::/64", "discard-only", false, "100::1", ""),
	entry("100:0:0:1::/64", "dummy IPv6 prefix", false, "100:0:0:1::1", ""),
	// 2001::/23 holds Teredo (2001::/32), benchmarking (2001:2::/48),
	// ORCHID (2001:10::/28) and blocks the registry marks reachable:
	// the PCP, TURN and DNS-SD SRP anycast addresses (2001:1::1-3), AMT
	// (2001:3::/32), AS112-v6 (2001:4:112::/48), ORCHIDv2 (2001:20::/28)
	// and drone remote ID tags (2001:30::/28). The whole /23 is blocked.
	entry("2001::/23", "IETF protocol assignments", false, "2001:1::1", "2001:200::1"),
	entry("2001::/32", "Teredo", false, "2001:0:4136:e378:8000:63bf:3fff:fdd2", ""),
	entry("2001:2::/48", "benchmarking", false, "2001:2::1", ""),
	entry("2001:3::/32", "AMT", true, "2001:3::1", ""),
	entry("2001:4:112::/48", "AS112-v6", true, "2001:4:112::1", ""),
	entry("2001:10::/28", "ORCHID (deprecated)", false, "2001:10::1", ""),
	entry("2001:20::/28", "ORCHIDv2", true, "2001:20::1", ""),
	entry("2001:30::/28", "drone remote ID protocol entity tags", true, "2001:30::1", ""),
	entry("2001:db8::/32", "documentation", false, "2001:db8::1", "2001:db9::1"),
	entry("2620:4f:8000::/48", "direct delegation AS112 service", true, "2620:4f:8000::1", "2620:4f:8001::1"),
	entry("3fff::/20", "documentation", false, "3fff:fff::1", "3fff:1000::1"),
	entry("5f00::/16", "segment routing (SRv6) SIDs", false, "5f00::1", ""),
	entry("fc00::/7", "unique local", false, "fd12:3456::1", ""),
	entry("fe80::/10", "link-local unicast", false, "fe80::1", ""),
	entry("fec0::/10", "site-local (deprecated)", false, "fec0::1", ""),
	entry("ff00::/8", "multicast", false, "ff02::1", ""),
}

// globalUnicast is the only IPv6 space IANA allocates for global unicast
// (RFC 4291 section 2.4); every IPv6 address outside it is blocked, except
// the embedded forms below.
var globalUnicast = netip.MustParsePrefix("2000::/3")

// embedding is an IPv6 range that carries an IPv4 address in its bits:
// such an address is public exactly when its IPv4 address is.
type embedding struct {
	prefix netip.Prefix
	name   string
	at     int // index of the IPv4 address's first byte in the 16
}

var embedded = []embedding{
	{netip.MustParsePrefix("::ffff:0:0/96"), "IPv4-mapped", 12},
	{netip.MustParsePrefix("64:ff9b::/96"), "NAT64 well-known prefix (RFC 6052)", 12},
	{netip.MustParsePrefix("2002::/16"), "6to4 (RFC 3056)", 2},
}
