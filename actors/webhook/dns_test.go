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
// the current address for A questions, no records for others (AAAA).
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
	if qtype == 1 {
		binary.BigEndian.PutUint16(resp[6:], 1) // one answer
		resp = append(resp, 0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 0, 0, 4)
		a4 := addr.As4()
		resp = append(resp, a4[:]...)
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
