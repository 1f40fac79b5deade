// Package egress decides which network addresses the bridge may call on an
// owner's behalf. The API checks forward URLs with it when they are
// configured, and the webhook client (actors/webhook) checks again with it
// when it connects, because a host name can resolve to a different address
// later (DNS rebinding).
//
// An address is public when it is global unicast and in no range of the
// IANA IPv4 and IPv6 Special-Purpose Address Registries (registry.go).
// The rule, in order:
//   - an address with a zone (fe80::1%eth0) is not public: a zone only
//     means something for an address of limited scope;
//   - an IPv6 address that carries an IPv4 address (IPv4-mapped
//     ::ffff:0:0/96, NAT64 64:ff9b::/96, 6to4 2002::/16) is public exactly
//     when that IPv4 address is;
//   - an IPv6 address outside 2000::/3, the only space allocated for
//     global unicast, is not public (this covers IPv4-compatible ::/96,
//     IPv4-translated ::ffff:0:0:0/96, site-local fec0::/10, 5f00::/16,
//     unique local, link-local and multicast, and any range assigned later);
//   - an address in any registry range is not public.
//
// A few registry ranges are marked globally reachable: the PCP, TURN and
// DNS-SD SRP anycast addresses (192.0.0.9, 192.0.0.10, 2001:1::1-3), AS112
// (192.31.196.0/24, 192.175.48.0/24, 2001:4:112::/48, 2620:4f:8000::/48),
// AMT (192.52.193.0/24, 2001:3::/32), ORCHIDv2 (2001:20::/28) and drone
// tags (2001:30::/28). They are blocked all the same. An anycast service
// is answered by its nearest instance, often a device on the bridge's own
// network; ORCHIDs and drone tags are identifiers, not places to connect
// to; and none of them hosts a webhook receiver. Teredo (2001::/32) is
// blocked rather than judged by its embedded addresses: it reaches an IPv4
// host through a relay, and no receiver is reached that way.
package egress

import (
	"net/netip"
)

// PublicAddr reports whether ip is a global unicast address the bridge
// may call: see the package comment for the rule.
func PublicAddr(ip netip.Addr) bool {
	if !ip.IsValid() || ip.Zone() != "" {
		return false
	}
	if ip.Is6() {
		for _, e := range embedded {
			if e.prefix.Contains(ip) {
				b := ip.As16()
				return unlisted(netip.AddrFrom4([4]byte(b[e.at : e.at+4])))
			}
		}
		if !globalUnicast.Contains(ip) {
			return false
		}
	}
	return unlisted(ip)
}

// unlisted judges an address that is IPv4, or IPv6 inside 2000::/3 and
// outside the embedded forms, against the registry.
func unlisted(ip netip.Addr) bool {
	if ip.IsUnspecified() || ip.IsLoopback() || ip.IsPrivate() || ip.IsMulticast() ||
		ip.IsLinkLocalUnicast() || !ip.IsGlobalUnicast() {
		return false
	}
	for _, s := range registry {
		if s.prefix.Contains(ip) {
			return false
		}
	}
	return true
}
