package api

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/xmtpbridge/bridge/internal/testkit"
)

// pingCounter is a TCP proxy in front of a gRPC server that counts the
// HTTP/2 PING frames going each way.
type pingCounter struct {
	addr             string
	toServer, toPeer atomic.Int64
}

func newPingCounter(t *testing.T, server string) *pingCounter {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lis.Close() })
	p := &pingCounter{addr: lis.Addr().String()}
	go func() {
		for {
			c, err := lis.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", server)
			if err != nil {
				c.Close()
				continue
			}
			t.Cleanup(func() { c.Close(); s.Close() })
			go countFrames(c, s, len("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), &p.toServer)
			go countFrames(s, c, 0, &p.toPeer)
		}
	}()
	return p
}

// countFrames copies src to dst, counting the PING frames after the first
// skip bytes (the client's connection preface).
func countFrames(src, dst net.Conn, skip int, pings *atomic.Int64) {
	defer dst.Close()
	r := bufio.NewReader(io.TeeReader(src, dst))
	if _, err := r.Discard(skip); err != nil {
		return
	}
	var h [9]byte
	for {
		if _, err := io.ReadFull(r, h[:]); err != nil {
			return
		}
		if h[3] == 0x6 { // PING
			pings.Add(1)
		}
		n := int(binary.BigEndian.Uint32(append([]byte{0}, h[:3]...)))
		if _, err := r.Discard(n); err != nil {
			return
		}
	}
}

// TestMessagesCostNoPings: a stream of envelopes one at a time, and
// publishes one at a time, send no PING frames either way. With gRPC's
// bandwidth-delay estimator on (windows not fixed, on the client or on
// the node), nearly every data frame that arrives is followed by a ping
// and its ack.
func TestMessagesCostNoPings(t *testing.T) {
	n := startNode(t, testDatabase(t), "", false)
	p := newPingCounter(t, n.GRPCAddr())
	c := dial(t, p.addr)
	ctx := testkit.Context(t, 60*time.Second)
	sub := c.Subscribe(ctx)
	defer sub.Close()
	got := collect(sub)
	sub.Add(topic("pings"))
	testkit.WaitFor(t, 20*time.Second, sub.Connected, "connected")
	const total = 200
	var want []string
	for i := range total {
		m := fmt.Sprint("m", i)
		want = append(want, m)
		if err := c.Publish(ctx, nil, envAt("pings", now(), m)); err != nil {
			t.Fatalf("publish: %v", err)
		}
		time.Sleep(time.Millisecond)
	}
	got.expect(t, want...)
	if up, down := p.toServer.Load(), p.toPeer.Load(); up+down > 4 {
		t.Fatalf("%d messages each way cost %d PING frames to the node and %d from it, want none", total, up, down)
	}
}
