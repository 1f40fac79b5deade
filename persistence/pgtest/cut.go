package pgtest

import (
	"bytes"
	"encoding/binary"
	"io"
	"net"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
)

// Cutter is a TCP proxy on a loopback port between a client and the
// machine's Postgres that breaks one connection just after a statement ran:
// once armed, the first statement whose text holds its marker runs and
// commits on the server as usual, but the client gets only the first row
// of its answer before the connection closes. It is the failure of a
// connection lost after Postgres committed, at the point where the client
// reads the statement's rows.
type Cutter struct {
	marker []byte
	ln     net.Listener
	armed  atomic.Bool
	cuts   atomic.Int64
	wg     sync.WaitGroup
}

// NewCutter starts a Cutter in front of the database of db and returns it
// with the URL that reaches the database through it. It stops on cleanup.
func NewCutter(t testing.TB, db, marker string) (*Cutter, string) {
	t.Helper()
	u, err := url.Parse(db)
	if err != nil {
		t.Fatalf("parse database url: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	c := &Cutter{marker: []byte(marker), ln: ln}
	target := u.Host
	c.wg.Add(1)
	go c.accept(target)
	t.Cleanup(func() {
		_ = ln.Close()
		c.wg.Wait()
	})
	u.Host = ln.Addr().String()
	return c, u.String()
}

// Arm makes the next statement that holds the marker the one cut.
func (c *Cutter) Arm() { c.armed.Store(true) }

// Cuts is how many connections the Cutter broke.
func (c *Cutter) Cuts() int64 { return c.cuts.Load() }

func (c *Cutter) accept(target string) {
	defer c.wg.Done()
	var conns sync.WaitGroup
	defer conns.Wait()
	for {
		client, err := c.ln.Accept()
		if err != nil {
			return
		}
		server, err := net.Dial("tcp", target)
		if err != nil {
			_ = client.Close()
			continue
		}
		conns.Add(1)
		go func() {
			defer conns.Done()
			c.serve(client, server)
		}()
	}
}

// serve copies the bytes of one connection both ways. After the client
// sent a statement with the marker while the Cutter was armed, it reads
// the server's messages up to each ReadyForQuery: an answer without a
// CommandComplete (the statement being prepared) is passed on, and the
// first one with it (the statement ran, and committed before
// ReadyForQuery) is passed on only up to its first row, then both sides
// are closed.
func (c *Cutter) serve(client, server net.Conn) {
	var marked atomic.Bool
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 64<<10)
		for {
			n, err := client.Read(buf)
			if n > 0 {
				if bytes.Contains(buf[:n], c.marker) && c.armed.CompareAndSwap(true, false) {
					marked.Store(true)
				}
				if _, werr := server.Write(buf[:n]); werr != nil {
					break
				}
			}
			if err != nil {
				break
			}
		}
		_ = server.Close()
	}()
	defer func() {
		_ = client.Close()
		_ = server.Close()
		<-done
	}()
	// Every message of the server is a type byte and a length; the test
	// URLs ask for no SSL (sslmode=disable), whose one-byte answer would
	// not be.
	var pending []byte
	head := make([]byte, 5)
	for {
		if _, err := io.ReadFull(server, head); err != nil {
			return
		}
		n := int(binary.BigEndian.Uint32(head[1:])) - 4
		if n < 0 {
			return
		}
		msg := make([]byte, 5+n)
		copy(msg, head)
		if _, err := io.ReadFull(server, msg[5:]); err != nil {
			return
		}
		if !marked.Load() {
			if _, err := client.Write(msg); err != nil {
				return
			}
			continue
		}
		pending = append(pending, msg...)
		if msg[0] != 'Z' {
			continue
		}
		if cut := firstRow(pending); cut >= 0 {
			_, _ = client.Write(pending[:cut])
			c.cuts.Add(1)
			return
		}
		if _, err := client.Write(pending); err != nil {
			return
		}
		pending = nil
	}
}

// firstRow returns how many bytes of msgs, the server's messages up to a
// ReadyForQuery, to pass on when they answer an executed statement: up to
// and including its first DataRow, or up to its CommandComplete when it
// returned none. It is -1 when no statement ran (no CommandComplete).
func firstRow(msgs []byte) int {
	end, complete := -1, false
	for at := 0; at+5 <= len(msgs); {
		n := int(binary.BigEndian.Uint32(msgs[at+1:at+5])) + 1
		switch msgs[at] {
		case 'D':
			if end < 0 {
				end = at + n
			}
		case 'C':
			if end < 0 {
				end = at
			}
			complete = true
		}
		at += n
	}
	if !complete {
		return -1
	}
	return end
}
