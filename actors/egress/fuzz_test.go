package egress

import (
	"net/netip"
	"testing"
)

// FuzzPublicAddr classifies arbitrary addresses, given as text or as 4 or
// 16 raw bytes. It never panics, and an address it calls public is global
// unicast, in no blocked range, and carries no blocked IPv4 address.
func FuzzPublicAddr(f *testing.F) {
	for _, s := range registry {
		f.Add(s.inside)
		f.Add(s.outside)
	}
	for _, s := range []string{"8.8.8.8", "::ffff:8.8.8.8", "64:ff9b::808:808", "2002:808:808::1", "fe80::1%eth0",
		"2606:4700::1%25", "::127.0.0.1", "\x7f\x00\x00\x01", "\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\xff\xff\x7f\x00\x00\x01"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ip, err := netip.ParseAddr(s)
		if err != nil {
			var ok bool
			if ip, ok = netip.AddrFromSlice([]byte(s)); !ok {
				return
			}
		}
		if !PublicAddr(ip) {
			return
		}
		if ip.Zone() != "" {
			t.Fatalf("%s has a zone and is public", ip)
		}
		v4 := ip
		for _, e := range embedded {
			if e.prefix.Contains(ip) {
				b := ip.As16()
				v4 = netip.AddrFrom4([4]byte(b[e.at : e.at+4]))
				if !PublicAddr(v4) {
					t.Fatalf("%s is public but carries %s, which is not", ip, v4)
				}
			}
		}
		if v4 == ip && ip.Is6() && !globalUnicast.Contains(ip) {
			t.Fatalf("%s is public but outside 2000::/3", ip)
		}
		for _, s := range registry {
			if s.prefix.Contains(ip) || s.prefix.Contains(v4) {
				t.Fatalf("%s is public but inside %s (%s)", ip, s.prefix, s.name)
			}
		}
		if v4.IsLoopback() || v4.IsPrivate() || v4.IsMulticast() || v4.IsLinkLocalUnicast() || v4.IsUnspecified() {
			t.Fatalf("%s is public but %s is internal", ip, v4)
		}
	})
}
