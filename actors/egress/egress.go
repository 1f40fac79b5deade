// Package egress decides which network addresses the bridge may call on an
// owner's behalf. The API checks forward URLs with it when they are
// configured, and the webhook client (actors/webhook) checks again with it
// when it connects, because a host name can resolve to a different address
// later (DNS rebinding).
package egress

import (
	"net/netip"
)

// blockedPrefixes are ranges that are internal or not globally routable,
// beyond those the netip predicates already cover.
var blockedPrefixes = func() []netip.Prefix {
	var out []netip.Prefix
	for _, s := range []string{
		"0.0.0.0/8",       // "this" network
		"100.64.0.0/10",   // carrier-grade NAT
		"192.0.0.0/24",    // IETF protocol assignments
		"192.0.2.0/24",    // documentation
		"198.18.0.0/15",   // benchmarking
		"198.51.100.0/24", // documentation
		"203.0.113.0/24",  // documentation
		"240.0.0.0/4",     // reserved, broadcast
		"64:ff9b::/96",    // NAT64, embeds IPv4
		"64:ff9b:1::/48",  // local NAT64
		"100::/64",        // discard
		"2001:db8::/32",   // documentation
		"2002::/16",       // 6to4, embeds IPv4
	} {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}()

// PublicAddr reports whether ip is a globally routable unicast address:
// not loopback, private (RFC 1918, IPv6 unique local), link-local,
// unspecified, multicast, carrier-grade NAT, documentation, benchmarking or
// reserved. IPv4-mapped IPv6 addresses are judged as their IPv4 address.
func PublicAddr(ip netip.Addr) bool {
	ip = ip.Unmap()
	if !ip.IsValid() || ip.IsUnspecified() || ip.IsLoopback() || ip.IsPrivate() || ip.IsMulticast() ||
		ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() || ip.IsInterfaceLocalMulticast() {
		return false
	}
	for _, p := range blockedPrefixes {
		if p.Contains(ip) {
			return false
		}
	}
	return true
}
