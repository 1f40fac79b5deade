package egress

import (
	"net/netip"
	"testing"
)

// TestRegistryRanges checks every range of the table: an address inside
// is refused and, where the range has a public neighbour, the address just
// outside is allowed.
func TestRegistryRanges(t *testing.T) {
	for _, s := range registry {
		if s.prefix != s.prefix.Masked() {
			t.Errorf("%s (%s) is not a canonical prefix", s.prefix, s.name)
		}
		in := netip.MustParseAddr(s.inside)
		if !s.prefix.Contains(in) {
			t.Errorf("%s (%s): the test address %s is not inside", s.prefix, s.name, in)
		}
		if PublicAddr(in) {
			t.Errorf("%s (%s): %s is public", s.prefix, s.name, in)
		}
		if in.Is4() && PublicAddr(netip.AddrFrom16(in.As16())) {
			t.Errorf("%s (%s): the IPv4-mapped form of %s is public", s.prefix, s.name, in)
		}
		if s.outside == "" {
			continue
		}
		out := netip.MustParseAddr(s.outside)
		if s.prefix.Contains(out) {
			t.Errorf("%s (%s): the outside address %s is inside", s.prefix, s.name, out)
		}
		if !PublicAddr(out) {
			t.Errorf("%s (%s): %s, just outside, is not public", s.prefix, s.name, out)
		}
	}
}

// TestIssue10IPv6Forms lists the forms that got past the filter before:
// each is refused now.
func TestIssue10IPv6Forms(t *testing.T) {
	for _, a := range []string{
		"::127.0.0.1", "::7f00:1", "::10.0.0.1", "::8.8.8.8", // IPv4-compatible
		"::ffff:0:7f00:1", "::ffff:0:808:808", // IPv4-translated
		"fec0::1", "feff:ffff::1", // site-local
		"2001:0:4136:e378:8000:63bf:3fff:fdd2", "2001::1", "2001:0:ffff::1", // Teredo
		"2001:2::1", "2001:2:0:ffff::1", // benchmarking
		"3fff::1", "3fff:fff:ffff::1", // documentation
		"5f00::1", "5f00:ffff::1", // SRv6 SIDs
	} {
		if PublicAddr(netip.MustParseAddr(a)) {
			t.Errorf("%s is public", a)
		}
	}
}

// TestEmbeddedIPv4 checks the forms judged by the IPv4 address they carry.
func TestEmbeddedIPv4(t *testing.T) {
	for addr, want := range map[string]bool{
		"::ffff:8.8.8.8": true, "::ffff:127.0.0.1": false, "::ffff:10.0.0.1": false, "::ffff:192.88.99.1": false,
		"64:ff9b::808:808": true, "64:ff9b::7f00:1": false, "64:ff9b::a9fe:a9fe": false, "64:ff9b::c000:201": false,
		"64:ff9b::1:808:808": false, // outside the /96: reserved space
		"2002:808:808::1":    true, "2002:7f00:1::": false, "2002:a00:1::1": false, "2002:c058:6301::": false,
		"2002:e000:1::": false, "2002:ffff:ffff::": false,
	} {
		if got := PublicAddr(netip.MustParseAddr(addr)); got != want {
			t.Errorf("PublicAddr(%s) = %v, want %v", addr, got, want)
		}
	}
}

func TestPublicAddr(t *testing.T) {
	for addr, want := range map[string]bool{
		"8.8.8.8": true, "93.184.216.34": true, "2606:4700::1": true, "2a00:1450:4001::1": true,
		"1.1.1.1": true, "223.255.255.254": true, "2001:200::1": true, "3ffe::1": true, "2620:4f:7fff::1": true,
		"127.0.0.1": false, "10.0.0.1": false, "172.16.5.4": false, "192.168.0.1": false, "169.254.169.254": false,
		"100.64.0.1": false, "100.127.255.255": false, "0.0.0.0": false, "0.1.2.3": false, "224.0.0.1": false,
		"255.255.255.255": false, "198.18.0.1": false, "192.0.2.1": false, "::1": false, "::": false,
		"fc00::1": false, "fd12::1": false, "fe80::1": false, "ff02::1": false, "2001:db8::1": false,
		"4000::1": false, "e000::1": false, "100::1": false, "::ffff:0:0": false,
	} {
		if got := PublicAddr(netip.MustParseAddr(addr)); got != want {
			t.Errorf("PublicAddr(%s) = %v, want %v", addr, got, want)
		}
	}
}

// TestZones refuses any address with a zone, global ones included: a zone
// only makes sense for an address of limited scope.
func TestZones(t *testing.T) {
	for _, a := range []string{"fe80::1%eth0", "fe80::1%1", "2606:4700::1%eth0", "::ffff:8.8.8.8%lo", "ff02::1%eth0"} {
		if PublicAddr(netip.MustParseAddr(a)) {
			t.Errorf("%s is public", a)
		}
	}
	if PublicAddr(netip.Addr{}) {
		t.Error("the zero Addr is public")
	}
}
