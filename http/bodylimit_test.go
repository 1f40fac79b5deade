package http

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	nethttp "net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/xmtpbridge/bridge/actors/plugin/plugintest"
	"github.com/xmtpbridge/bridge/persistence"
)

// The production limits: BRIDGE_MAX_BODY_BYTES and BRIDGE_PLUGIN_MAX_UPLOAD
// at their defaults.
const (
	testMaxBody   = 1 << 20
	testMaxPlugin = 8 << 20
)

func bodyLimitHarness(t *testing.T) (*harness, string) {
	t.Helper()
	h := pluginHarness(t, func(o *Options) {
		o.MaxBodyBytes = testMaxBody
		o.MaxPluginBytes = testMaxPlugin
		o.SignupRatePerMinute = 1000
	})
	return h, strings.TrimPrefix(h.startReal(), "http://")
}

// rawRequest is one request on its own TCP connection: it sends the head,
// then up to send bytes of a body of declared length size (or chunked when
// size < 0), and returns the response, read while the body is still being
// sent. The body is never held in memory.
type rawResult struct {
	status int
	code   string
	close  bool
	err    error
}

func (r rawResult) String() string {
	return fmt.Sprintf("status %d code %q close %v err %v", r.status, r.code, r.close, r.err)
}

var zeros = make([]byte, 64<<10)

func rawRequest(addr, method, path, token string, size, send int) rawResult {
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		return rawResult{err: err}
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(20 * time.Second))
	head := fmt.Sprintf("%s %s HTTP/1.1\r\nHost: bridge\r\nContent-Type: application/json\r\n", method, path)
	if token != "" {
		head += "Authorization: Bearer " + token + "\r\n"
	}
	if size >= 0 {
		head += fmt.Sprintf("Content-Length: %d\r\n\r\n", size)
	} else {
		head += "Transfer-Encoding: chunked\r\n\r\n"
	}
	if _, err := io.WriteString(conn, head); err != nil {
		return rawResult{err: err}
	}
	go func() {
		// Write errors are expected: the server closes a refused
		// connection without reading the rest.
		for sent := 0; sent < send; {
			n := min(len(zeros), send-sent)
			var err error
			if size >= 0 {
				_, err = conn.Write(zeros[:n])
			} else {
				_, err = fmt.Fprintf(conn, "%x\r\n%s\r\n", n, zeros[:n])
			}
			if err != nil {
				return
			}
			sent += n
		}
	}()
	resp, err := nethttp.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return rawResult{err: err}
	}
	defer resp.Body.Close()
	var m struct{ Code string }
	_ = json.NewDecoder(resp.Body).Decode(&m)
	return rawResult{status: resp.StatusCode, code: m.Code, close: resp.Close}
}

// TestAnonymousLargeBodiesStayUnbuffered has 100 anonymous clients send
// 8 MiB bodies (the plug-in limit) at once to /v1/accounts and /signup. Each
// gets 413 body_too_large, and the server's heap grows by far less than
// the 800 MiB it would take to buffer them: fasthttp reads at most a
// small prefix of each before bodyLimit refuses it.
func TestAnonymousLargeBodiesStayUnbuffered(t *testing.T) {
	_, addr := bodyLimitHarness(t)
	const clients, size = 50, 8 << 20
	const bound = 48 << 20

	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapInuse
	var peak atomic.Uint64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peak.Load() {
				peak.Store(ms.HeapInuse)
			}
			select {
			case <-stop:
				return
			case <-time.After(2 * time.Millisecond):
			}
		}
	}()

	var wg sync.WaitGroup
	results := make([]rawResult, 2*clients)
	for i := range results {
		path := "/v1/accounts"
		if i%2 == 1 {
			path = "/signup"
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = rawRequest(addr, "POST", path, "", size, size)
		}()
	}
	wg.Wait()
	close(stop)
	<-sampled
	growth := int64(peak.Load()) - int64(base)
	t.Logf("heap in use: base %d MiB, peak growth %d KiB under %d parallel %d MiB bodies", base>>20, growth>>10, 2*clients, size>>20)
	if growth > bound {
		t.Fatalf("heap grew by %d MiB, over the %d MiB bound", growth>>20, bound>>20)
	}
	for i, r := range results {
		if r.err != nil || r.status != 413 || r.code != CodeBodyTooLarge || !r.close {
			t.Fatalf("client %d: %v, want 413 body_too_large and a closed connection", i, r)
		}
	}
}

// paddedPlugin is the bot module grown to exactly size bytes by a custom
// section, which a Wasm runtime ignores.
func paddedPlugin(t *testing.T, size int) []byte {
	t.Helper()
	bot := plugintest.Build(t, plugintest.Bot, "")
	const name = "padding"
	uleb := func(v int) []byte {
		var b []byte
		for {
			c := byte(v & 0x7f)
			v >>= 7
			if v == 0 {
				return append(b, c)
			}
			b = append(b, c|0x80)
		}
	}
	for pad := size - len(bot) - 1 - 1 - len(name); pad > 0; pad-- {
		content := 1 + len(name) + pad
		if total := len(bot) + 1 + len(uleb(content)) + content; total == size {
			out := append(bytes.Clone(bot), 0)
			out = append(out, uleb(content)...)
			out = append(out, byte(len(name)))
			out = append(out, name...)
			return append(out, make([]byte, pad)...)
		}
	}
	t.Fatalf("bot module of %d bytes cannot be padded to %d", len(bot), size)
	return nil
}

// TestPluginUploadLargeBodyOnlyAfterAuth: an authenticated 5 MiB upload,
// over the general limit, is stored; an anonymous one is refused 401
// after the server read only a prefix of its body; one over the plug-in
// limit, declared or chunked, gets 413.
func TestPluginUploadLargeBodyOnlyAfterAuth(t *testing.T) {
	h, addr := bodyLimitHarness(t)
	key := h.signup("owner")
	wasm := paddedPlugin(t, 5<<20)

	req, _ := nethttp.NewRequest("POST", "http://"+addr+"/v1/plugins?name=big", bytes.NewReader(wasm))
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/wasm")
	resp, err := nethttp.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 201 || !strings.Contains(string(raw), persistence.PluginSHA256(wasm)) {
		t.Fatalf("authenticated 5 MiB upload: %d %s", resp.StatusCode, raw)
	}

	// The anonymous client sends 64 KiB of its declared 5 MiB and then
	// waits: the 401 comes back without the server waiting for the rest.
	for _, token := range []string{"", "bk_live_wrong"} {
		if r := rawRequest(addr, "POST", "/v1/plugins?name=anon", token, 5<<20, 64<<10); r.err != nil || r.status != 401 || r.code != CodeUnauthorized || !r.close {
			t.Fatalf("anonymous upload (token %q): %v, want 401 and a closed connection", token, r)
		}
	}
	// Over BRIDGE_PLUGIN_MAX_UPLOAD: by Content-Length, before reading,
	// and chunked, after reading one byte over.
	if r := rawRequest(addr, "POST", "/v1/plugins?name=huge", key, testMaxPlugin+1, 64<<10); r.err != nil || r.status != 413 || r.code != CodeBodyTooLarge {
		t.Fatalf("declared oversized upload: %v", r)
	}
	if r := rawRequest(addr, "POST", "/v1/plugins?name=huge", key, -1, testMaxPlugin+(1<<20)); r.err != nil || r.status != 413 || r.code != CodeBodyTooLarge {
		t.Fatalf("chunked oversized upload: %v", r)
	}
	ps, err := h.store.ListPlugins(context.Background(), accountOf(t, h, key))
	if err != nil || len(ps) != 1 || ps[0].Name != "big" || ps[0].Size != 5<<20 {
		t.Fatalf("stored plug-ins %v, %v; want only the authenticated one", ps, err)
	}
}

// TestChunkedBodiesAreBounded: a chunked body without Content-Length on an
// ordinary route is refused once it passes BRIDGE_MAX_BODY_BYTES, and one
// within it is read as before.
func TestChunkedBodiesAreBounded(t *testing.T) {
	h, addr := bodyLimitHarness(t)
	for _, path := range []string{"/v1/accounts", "/signup", "/hook", "/v1/bridges"} {
		if r := rawRequest(addr, "POST", path, "", -1, 4*testMaxBody); r.err != nil || r.status != 413 || r.code != CodeBodyTooLarge || !r.close {
			t.Fatalf("chunked %s: %v, want 413 body_too_large", path, r)
		}
	}
	// A chunked body within the limit still works.
	body, _ := json.Marshal(map[string]any{"name": "chunked", "signupKey": testSignupKey})
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(20 * time.Second))
	fmt.Fprintf(conn, "POST /v1/accounts HTTP/1.1\r\nHost: bridge\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\n", len(body), body)
	resp, err := nethttp.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 201 || !strings.Contains(string(raw), persistence.APIKeyPrefix) {
		t.Fatalf("chunked signup: %d %s", resp.StatusCode, raw)
	}
	// The refused bodies created nothing.
	if as, _, err := h.store.ListAccounts(context.Background(), persistence.Page{Limit: 10}); err != nil || len(as) != 1 || as[0].Name != "chunked" {
		t.Fatalf("accounts %v, %v; want only the chunked signup", as, err)
	}
}

// TestUnreadBodyDoesNotBecomeTheNextRequest: on a kept-alive connection, a
// body within the limit on a route that ignores it is consumed, so
// the next request on the connection is answered as itself.
func TestUnreadBodyDoesNotBecomeTheNextRequest(t *testing.T) {
	_, addr := bodyLimitHarness(t)
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(20 * time.Second))
	// The first body is itself a request, which must not be served.
	smuggled := "GET /v1/admin/accounts HTTP/1.1\r\nHost: bridge\r\n\r\n"
	first := smuggled + strings.Repeat(" ", 200<<10)
	fmt.Fprintf(conn, "POST /healthz HTTP/1.1\r\nHost: bridge\r\nContent-Length: %d\r\n\r\n%sGET /healthz HTTP/1.1\r\nHost: bridge\r\n\r\n", len(first), first)
	br := bufio.NewReader(conn)
	for i, want := range []int{405, 200} {
		resp, err := nethttp.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("response %d: %v", i, err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Fatalf("response %d: %d, want %d", i, resp.StatusCode, want)
		}
	}
}

// TestCompressedBodiesAreBoundedDecoded: a small compressed body that
// expands past BRIDGE_MAX_BODY_BYTES (a decompression bomb) gets 413 and
// costs the node about the limit, not the expanded size; one within the
// limit is decoded for the handler; an unknown encoding or a broken
// stream is a 400.
func TestCompressedBodiesAreBoundedDecoded(t *testing.T) {
	h, addr := bodyLimitHarness(t)
	gz := func(b []byte) []byte {
		var buf bytes.Buffer
		w, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
		w.Write(b)
		w.Close()
		return buf.Bytes()
	}
	post := func(enc string, body []byte) (int, string) {
		req, _ := nethttp.NewRequest("POST", "http://"+addr+"/v1/accounts", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Content-Encoding", enc)
		resp, err := nethttp.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("post %s: %v", enc, err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		var e struct {
			Code string `json:"code"`
		}
		_ = json.Unmarshal(raw, &e)
		return resp.StatusCode, e.Code
	}

	// 64 MiB of spaces inside a JSON string compress to about 64 KiB.
	bomb := gz(append(append([]byte(`{"name":"`), bytes.Repeat([]byte(" "), 64<<20)...), []byte(`"}`)...))
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	before := ms.TotalAlloc
	const parallel = 8
	var wg sync.WaitGroup
	codes := make([]string, parallel)
	statuses := make([]int, parallel)
	for i := range parallel {
		wg.Add(1)
		go func() {
			defer wg.Done()
			statuses[i], codes[i] = post("gzip", bomb)
		}()
	}
	wg.Wait()
	runtime.ReadMemStats(&ms)
	allocated := ms.TotalAlloc - before
	for i := range parallel {
		if statuses[i] != 413 || codes[i] != CodeBodyTooLarge {
			t.Fatalf("gzip bomb %d: %d %q, want 413 body_too_large", i, statuses[i], codes[i])
		}
	}
	// Each request may decode up to the limit (and the reader's buffers);
	// none may expand its 64 MiB.
	if bound := uint64(parallel) * 8 * testMaxBody; allocated > bound {
		t.Fatalf("%d gzip bombs allocated %d MiB, over the %d MiB bound", parallel, allocated>>20, bound>>20)
	}
	t.Logf("%d gzip bombs of %d KiB (64 MiB decoded) allocated %d MiB in all", parallel, len(bomb)>>10, allocated>>20)

	body, _ := json.Marshal(map[string]any{"name": "gzipped", "signupKey": testSignupKey})
	if st, code := post("gzip", gz(body)); st != 201 {
		t.Fatalf("gzip signup within the limit: %d %q, want 201", st, code)
	}
	if st, code := post("compress", body); st != 400 || code != CodeBadRequest {
		t.Fatalf("unknown encoding: %d %q, want 400 bad_request", st, code)
	}
	if st, code := post("gzip", []byte("not gzip at all")); st != 400 || code != CodeBadRequest {
		t.Fatalf("broken gzip: %d %q, want 400 bad_request", st, code)
	}
	if as, _, err := h.store.ListAccounts(context.Background(), persistence.Page{Limit: 10}); err != nil || len(as) != 1 || as[0].Name != "gzipped" {
		t.Fatalf("accounts %v, %v; want only the gzipped signup", as, err)
	}
}

// TestEveryRouteIsBodyLimited walks every registered route that takes a
// body: a body declared one byte over BRIDGE_MAX_BODY_BYTES gets 413
// body_too_large from each, anonymous or not, before any handler runs;
// only the plug-in upload waits for its credentials (401 anonymous). A
// route registered ahead of the bodyLimit middleware, which Fiber would
// let read and decode a body of any size, fails here.
func TestEveryRouteIsBodyLimited(t *testing.T) {
	h, addr := bodyLimitHarness(t)
	param := strings.NewReplacer(":id", "00000000-0000-0000-0000-000000000000", ":messageId", "m", ":bid", "b",
		":address", "0x0000000000000000000000000000000000000000", ":point", "on_message", ":deliveryId", "1")
	checked := 0
	for _, r := range h.srv.app.GetRoutes(true) {
		switch r.Method {
		case "POST", "PUT", "PATCH", "DELETE":
		default:
			continue
		}
		path := param.Replace(r.Path)
		for strings.Contains(path, "/:") {
			i := strings.Index(path, "/:")
			j := strings.IndexByte(path[i+1:], '/')
			if j < 0 {
				path = path[:i] + "/x"
			} else {
				path = path[:i] + "/x" + path[i+1+j:]
			}
		}
		want, wantCode := 413, CodeBodyTooLarge
		if r.Method == "POST" && path == "/v1/plugins" {
			want, wantCode = 401, CodeUnauthorized
		}
		for _, token := range []string{"", "not-a-key"} {
			res := rawRequest(addr, r.Method, path, token, testMaxBody+1, testMaxBody+1)
			if res.err != nil || res.status != want || res.code != wantCode {
				t.Errorf("%s %s (token %q): %v, want %d %s", r.Method, path, token, res, want, wantCode)
			}
		}
		checked++
	}
	if checked < 20 {
		t.Fatalf("only %d routes with a body were found; the walk is broken", checked)
	}
	t.Logf("%d routes with a body checked", checked)
}
