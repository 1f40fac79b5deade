package webhook

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"testing"
)

// rebindingDNS is a real DNS server on 127.0.0.1 (UDP) that answers A
// queries from a list that a test changes between lookups, as an
// attacker's name server does in DNS rebinding.
type rebindingDNS struct {
	conn *net.UDPConn
	mu   sync.Mutex
	addr netip.Addr
	hits int
}

func startRebindingDNS(t *testing.T, first netip.Addr) *rebindingDNS {
	t.Helper()
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatalf("listen udp: %v", err)
	}
	d := &rebindingDNS{conn: conn, addr: first}
	t.Cleanup(func() { conn.Close() })
	go d.serve()
	return d
}

func (d *rebindingDNS) set(a netip.Addr) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.addr = a
}

func (d *rebindingDNS) serve() {
	buf := make([]byte, 512)
	for {
		n, from, err := d.conn.ReadFromUDP(buf)
		if err != nil {
			return
		}
		if resp := d.answer(buf[:n]); resp != nil {
			d.conn.WriteToUDP(resp, from)
		}
	}
}

// answer builds a response to a single-question query: one A record with
// the current address for A questions when it is IPv4, one AAAA record for
// AAAA questions when it is IPv6, and no records otherwise.
func (d *rebindingDNS) answer(q []byte) []byte {
	if len(q) < 12 {
		return nil
	}
	// Skip the question name.
	i := 12
	for i < len(q) && q[i] != 0 {
		i += int(q[i]) + 1
	}
	if i+5 > len(q) {
		return nil
	}
	qtype := binary.BigEndian.Uint16(q[i+1:])
	question := q[12 : i+5]
	d.mu.Lock()
	addr := d.addr
	d.hits++
	d.mu.Unlock()

	resp := make([]byte, 12, 64)
	copy(resp, q[:2])                       // id
	resp[2] = 0x81 | (q[2] & 0x01)          // response, recursion desired copied
	resp[3] = 0x80                          // recursion available, no error
	binary.BigEndian.PutUint16(resp[4:], 1) // one question
	resp = append(resp, question...)
	switch {
	case qtype == 1 && addr.Is4():
		binary.BigEndian.PutUint16(resp[6:], 1) // one answer
		resp = append(resp, 0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 0, 0, 4)
		a4 := addr.As4()
		resp = append(resp, a4[:]...)
	case qtype == 28 && addr.Is6():
		binary.BigEndian.PutUint16(resp[6:], 1) // one answer
		resp = append(resp, 0xc0, 12, 0, 28, 0, 1, 0, 0, 0, 0, 0, 16)
		a16 := addr.As16()
		resp = append(resp, a16[:]...)
	}
	return resp
}

func TestDialCheckDefeatsDNSRebinding(t *testing.T) {
	allowed := netip.MustParseAddr("127.0.0.2")
	dns := startRebindingDNS(t, allowed)
	resolver := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var dialer net.Dialer
		return dialer.DialContext(ctx, "udp", dns.conn.LocalAddr().String())
	}}

	// Both servers listen on the same port number, one on the allowed
	// address and one on 127.0.0.1, so that only the name's answer decides
	// which one a delivery reaches.
	var port string
	var internal *recordingServer
	for attempt := 0; ; attempt++ {
		public := &recordingServer{}
		srv := serveOn(t, "127.0.0.2", public.handler(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
		_, port, _ = net.SplitHostPort(srv.Listener.Addr().String())
		ln, err := net.Listen("tcp", "127.0.0.1:"+port)
		if err != nil {
			if attempt < 20 {
				continue
			}
			t.Fatalf("listen on 127.0.0.1:%s: %v", port, err)
		}
		internal = &recordingServer{}
		go http.Serve(ln, internal.handler(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "internal") }))
		t.Cleanup(func() { ln.Close() })
		break
	}

	h := newHarness(t, ClientOptions{Resolver: resolver})
	ep := endpoint(t, "http://hooks.rebind.test:"+port+"/", FormatJSON, true)
	ep.Headers = nil
	res := h.d.Deliver(context.Background(), ep, sampleMessage)
	if res.Outcome != OutcomeDelivered || res.Reply != "ok" {
		t.Fatalf("delivery to the allowed address: %+v", res)
	}

	// The name now points at loopback; a fresh connection must be refused.
	dns.set(netip.MustParseAddr("127.0.0.1"))
	h = newHarness(t, ClientOptions{Resolver: resolver})
	res = h.d.Deliver(context.Background(), ep, sampleMessage)
	if res.Outcome != OutcomeBlocked || !errors.Is(res.Err, ErrBlockedAddress) {
		t.Fatalf("delivery after rebinding: %+v", res)
	}
	if n := len(internal.requests()); n != 0 {
		t.Fatalf("the internal server got %d requests", n)
	}
	dns.mu.Lock()
	hits := dns.hits
	dns.mu.Unlock()
	if hits < 2 {
		t.Fatalf("the name server answered %d queries; the deliveries did not use it", hits)
	}
	if strings.Contains(res.Err.Error(), "hooks.rebind.test") {
		t.Fatalf("error shows the URL: %v", res.Err)
	}
}

// TestDialCheckRefusesSpecialRanges points a name at an address in each
// range the IPv6 forms of issue 10 got through (and the IPv4 ones added
// with them): the connection is refused when it is made, after DNS,
// whatever the name resolved to at save time.
func TestDialCheckRefusesSpecialRanges(t *testing.T) {
	dns := startRebindingDNS(t, netip.MustParseAddr("127.0.0.2"))
	resolver := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var dialer net.Dialer
		return dialer.DialContext(ctx, "udp", dns.conn.LocalAddr().String())
	}}
	for _, a := range []string{
		"::127.0.0.1", "::7f00:2", // IPv4-compatible ::/96
		"::ffff:0:7f00:1",                          // IPv4-translated ::ffff:0:0:0/96
		"fec0::1",                                  // site-local fec0::/10
		"2001:0:4136:e378:8000:63bf:3fff:fdd2",     // Teredo 2001::/32
		"2001:2::1",                                // benchmarking 2001:2::/48
		"2001:3::1", "2001:4:112::1", "2001:20::1", // the rest of 2001::/23
		"3fff::1",                 // documentation 3fff::/20
		"5f00::1",                 // SRv6 SIDs 5f00::/16
		"100:0:0:1::1", "4000::1", // outside global unicast 2000::/3
		"2620:4f:8000::1",                   // AS112 anycast
		"64:ff9b::7f00:1", "2002:7f00:1::1", // NAT64 and 6to4 carrying loopback
		"64:ff9b:1::7f00:1", // local-use NAT64
		"192.88.99.1", "192.0.0.9", "192.31.196.1", "192.52.193.1", "192.175.48.1",
	} {
		dns.set(netip.MustParseAddr(a))
		h := newHarness(t, ClientOptions{Resolver: resolver})
		ep := endpoint(t, "http://hooks.rebind.test:8080/", FormatJSON, true)
		ep.Headers = nil
		res := h.d.Deliver(context.Background(), ep, sampleMessage)
		if res.Outcome != OutcomeBlocked || !errors.Is(res.Err, ErrBlockedAddress) {
			t.Errorf("delivery to a name resolving to %s: %+v", a, res)
		}
	}
}
