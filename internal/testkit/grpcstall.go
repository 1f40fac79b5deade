package testkit

import (
	"bytes"
	"encoding/binary"
	"io"
	"net"
	"testing"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// StallGRPCCall opens an HTTP/2 connection to the gRPC listener at addr
// and starts a call of method whose request message declares size bytes
// but sends only its first kilobyte, then stalls: the server holds the
// call open, waiting for the rest. Closing the returned connection cuts
// the call off in the middle of its message. The connection is closed
// when the test ends.
func StallGRPCCall(t testing.TB, addr, method string, size uint32) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { conn.Close() })
	if _, err := io.WriteString(conn, http2.ClientPreface); err != nil {
		t.Fatalf("write preface: %v", err)
	}
	fr := http2.NewFramer(conn, conn)
	if err := fr.WriteSettings(); err != nil {
		t.Fatalf("write settings: %v", err)
	}
	var hdr bytes.Buffer
	enc := hpack.NewEncoder(&hdr)
	for _, f := range [][2]string{{":method", "POST"}, {":scheme", "http"}, {":path", method},
		{":authority", addr}, {"content-type", "application/grpc"}, {"te", "trailers"}} {
		_ = enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: hdr.Bytes(), EndHeaders: true}); err != nil {
		t.Fatalf("write headers: %v", err)
	}
	// The gRPC message prefix: not compressed, then the length.
	data := make([]byte, 5+1024)
	binary.BigEndian.PutUint32(data[1:5], size)
	if err := fr.WriteData(1, false, data); err != nil {
		t.Fatalf("write data: %v", err)
	}
	// Acknowledge the server's settings in the background, so that the
	// connection stays up until the test closes it.
	go func() {
		for {
			f, err := fr.ReadFrame()
			if err != nil {
				return
			}
			if s, ok := f.(*http2.SettingsFrame); ok && !s.IsAck() {
				_ = fr.WriteSettingsAck()
			}
		}
	}()
	return conn
}
