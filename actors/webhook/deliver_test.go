package webhook

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

const testSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

// serveOn starts an httptest server listening on ip (a loopback address
// such as 127.0.0.2), so a test can allow that one address and still
// prove that 127.0.0.1 is refused.
func serveOn(t *testing.T, ip string, h http.Handler) *httptest.Server {
	t.Helper()
	ln, err := net.Listen("tcp", ip+":0")
	if err != nil {
		t.Fatalf("listen on %s: %v (the loopback range 127.0.0.0/8 must be usable)", ip, err)
	}
	srv := httptest.NewUnstartedServer(h)
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	t.Cleanup(srv.Close)
	return srv
}

// captured is one request a test server received.
type captured struct {
	header http.Header
	body   []byte
}

// recordingServer answers with respond after recording each request.
type recordingServer struct {
	mu   sync.Mutex
	reqs []captured
}

func (s *recordingServer) handler(respond func(w http.ResponseWriter, r *http.Request)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		s.mu.Lock()
		s.reqs = append(s.reqs, captured{header: r.Header.Clone(), body: body})
		s.mu.Unlock()
		respond(w, r)
	})
}

func (s *recordingServer) requests() []captured {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]captured(nil), s.reqs...)
}

type harness struct {
	d       *Deliverer
	metrics *Metrics
}

// newHarness returns a Deliverer whose client may reach only 127.0.0.2
// among internal addresses.
func newHarness(t *testing.T, o ClientOptions) *harness {
	t.Helper()
	if o.AllowPrefixes == nil && !o.AllowPrivate {
		o.AllowPrefixes = []netip.Prefix{netip.MustParsePrefix("127.0.0.2/32")}
	}
	m, err := NewMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	return &harness{
		d:       NewDeliverer(Config{Client: NewClient(o), Metrics: m, Logger: slog.New(slog.DiscardHandler)}),
		metrics: m,
	}
}

func (h *harness) outcomes(o Outcome) float64 {
	var m dto.Metric
	if err := h.metrics.deliveries.WithLabelValues(string(o)).Write(&m); err != nil {
		panic(err)
	}
	return m.GetCounter().GetValue()
}

func endpoint(t *testing.T, url string, f Format, reply bool) Endpoint {
	return Endpoint{URL: url, Format: f, Reply: reply, Secrets: []Secret{mustSecret(t, testSecret)}, Timeout: 5 * time.Second,
		Headers: map[string]string{"X-Api-Key": "k1", "Webhook-Id": "forged", "Host": "evil", "Connection": "close", "User-Agent": "forged"}}
}

func TestDeliverRelayccSignedWithReply(t *testing.T) {
	rec := &recordingServer{}
	srv := serveOn(t, "127.0.0.2", rec.handler(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"ok":true,"data":"echo: hello"}`)
	}))
	h := newHarness(t, ClientOptions{})
	m := sampleMessage
	m.Content = "hello"
	res := h.d.Deliver(context.Background(), endpoint(t, srv.URL+"/hook?token=abc", FormatRelaycc, true), m)
	if res.Outcome != OutcomeDelivered || res.Err != nil || res.Status != 200 || !res.HasReply || res.Reply != "echo: hello" {
		t.Fatalf("result %+v", res)
	}
	reqs := rec.requests()
	if len(reqs) != 1 {
		t.Fatalf("server got %d requests", len(reqs))
	}
	got := reqs[0]
	want, _ := EncodeBody(FormatRelaycc, m)
	if string(got.body) != string(want) {
		t.Fatalf("body %s, want %s", got.body, want)
	}
	if err := Verify(testSecret, got.header, got.body, time.Now()); err != nil {
		t.Fatalf("receiver cannot verify the delivery: %v", err)
	}
	if got.header.Get(HeaderID) != m.ID || got.header.Get("Content-Type") != "application/json" ||
		got.header.Get("User-Agent") != DefaultUserAgent || got.header.Get("X-Api-Key") != "k1" {
		t.Fatalf("headers %v", got.header)
	}
	if tampered := append([]byte(nil), got.body...); len(tampered) > 0 {
		tampered[len(tampered)-3] ^= 1
		if err := Verify(testSecret, got.header, tampered, time.Now()); !errors.Is(err, ErrSignatureMismatch) {
			t.Fatalf("tampered body verified: %v", err)
		}
	}
	if h.outcomes(OutcomeDelivered) != 1 {
		t.Fatalf("delivered counter = %v", h.outcomes(OutcomeDelivered))
	}
	var class, latency dto.Metric
	if err := h.metrics.responses.WithLabelValues("2xx").Write(&class); err != nil || class.GetCounter().GetValue() != 1 {
		t.Fatalf("2xx responses = %v, %v", class.GetCounter().GetValue(), err)
	}
	if err := h.metrics.latency.Write(&latency); err != nil || latency.GetHistogram().GetSampleCount() != 1 {
		t.Fatalf("latency samples = %v, %v", latency.GetHistogram().GetSampleCount(), err)
	}
}

func TestDeliverJSONReplyAndStableID(t *testing.T) {
	rec := &recordingServer{}
	srv := serveOn(t, "127.0.0.2", rec.handler(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"reply":"got it"}`)
	}))
	h := newHarness(t, ClientOptions{})
	ep := endpoint(t, srv.URL, FormatJSON, true)
	for i := 0; i < 2; i++ {
		res := h.d.Deliver(context.Background(), ep, sampleMessage)
		if res.Outcome != OutcomeDelivered || res.Reply != "got it" || !res.HasReply {
			t.Fatalf("attempt %d: %+v", i, res)
		}
	}
	reqs := rec.requests()
	want, _ := EncodeBody(FormatJSON, sampleMessage)
	for _, r := range reqs {
		if string(r.body) != string(want) || r.header.Get(HeaderID) != sampleMessage.ID {
			t.Fatalf("request %s %v", r.body, r.header)
		}
		if err := Verify(testSecret, r.header, r.body, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
}

func TestDeliverPlainTextReplyAndNoReplyMode(t *testing.T) {
	srv := serveOn(t, "127.0.0.2", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, "plain answer")
	}))
	h := newHarness(t, ClientOptions{})
	res := h.d.Deliver(context.Background(), endpoint(t, srv.URL, FormatJSON, true), sampleMessage)
	if res.Outcome != OutcomeDelivered || res.Reply != "plain answer" {
		t.Fatalf("reply mode: %+v", res)
	}
	res = h.d.Deliver(context.Background(), endpoint(t, srv.URL, FormatJSON, false), sampleMessage)
	if res.Outcome != OutcomeDelivered || res.HasReply {
		t.Fatalf("no-reply mode: %+v", res)
	}
}

func TestDeliverClassifiesStatuses(t *testing.T) {
	retryDate := time.Now().Add(90 * time.Second).UTC().Format(http.TimeFormat)
	cases := []struct {
		status     int
		retryAfter string
		want       Outcome
		minAfter   time.Duration
		maxAfter   time.Duration
	}{
		{500, "", OutcomeRetry, 0, 0},
		{501, "", OutcomeRetry, 0, 0},
		{502, "", OutcomeThrottled, 0, 0},
		{503, "7", OutcomeThrottled, 7 * time.Second, 7 * time.Second},
		{504, "", OutcomeThrottled, 0, 0},
		{429, retryDate, OutcomeThrottled, 80 * time.Second, 91 * time.Second},
		{410, "", OutcomeGone, 0, 0},
		{400, "", OutcomeRejected, 0, 0},
		{404, "", OutcomeRejected, 0, 0},
		{418, "", OutcomeRejected, 0, 0},
		{304, "", OutcomeRejected, 0, 0},
		{204, "", OutcomeDelivered, 0, 0},
	}
	for _, c := range cases {
		t.Run(fmt.Sprint(c.status), func(t *testing.T) {
			srv := serveOn(t, "127.0.0.2", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if c.retryAfter != "" {
					w.Header().Set("Retry-After", c.retryAfter)
				}
				w.WriteHeader(c.status)
			}))
			h := newHarness(t, ClientOptions{})
			res := h.d.Deliver(context.Background(), endpoint(t, srv.URL, FormatJSON, false), sampleMessage)
			if res.Outcome != c.want || res.Status != c.status {
				t.Fatalf("result %+v, want outcome %s", res, c.want)
			}
			if res.RetryAfter < c.minAfter || res.RetryAfter > c.maxAfter {
				t.Fatalf("retry after %v, want within [%v, %v]", res.RetryAfter, c.minAfter, c.maxAfter)
			}
			if (c.want == OutcomeDelivered) != (res.Err == nil) {
				t.Fatalf("error %v for outcome %s", res.Err, res.Outcome)
			}
			if h.outcomes(c.want) != 1 {
				t.Fatalf("counter of %s = %v", c.want, h.outcomes(c.want))
			}
		})
	}
}

// TestDeliverInvalidStatusIsRetried: a status outside HTTP's 100 to 599,
// which Go's client reads from any three digits, is a broken endpoint's
// answer: retried, with no status kept (the store refuses such a code, so
// keeping it would lose the attempt's record).
func TestDeliverInvalidStatusIsRetried(t *testing.T) {
	for _, status := range []string{"799 Odd", "999 Odder", "099 Low", "600 Just Over"} {
		t.Run(status[:3], func(t *testing.T) {
			srv := serveOn(t, "127.0.0.2", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				conn, buf, err := w.(http.Hijacker).Hijack()
				if err != nil {
					t.Error(err)
					return
				}
				defer conn.Close()
				buf.WriteString("HTTP/1.1 " + status + "\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}")
				buf.Flush()
			}))
			h := newHarness(t, ClientOptions{})
			res := h.d.Deliver(context.Background(), endpoint(t, srv.URL, FormatJSON, true), sampleMessage)
			if res.Outcome != OutcomeRetry || res.Status != 0 || res.HasReply || res.Err == nil ||
				!strings.Contains(res.Err.Error(), "not an HTTP status") {
				t.Fatalf("result %+v, want a retry with no status", res)
			}
			if h.outcomes(OutcomeRetry) != 1 {
				t.Fatalf("counter of retries = %v", h.outcomes(OutcomeRetry))
			}
		})
	}
}

func TestDeliverToHangingTargetTimesOut(t *testing.T) {
	release := make(chan struct{})
	srv := serveOn(t, "127.0.0.2", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	defer close(release)
	h := newHarness(t, ClientOptions{})
	ep := endpoint(t, srv.URL, FormatJSON, true)
	ep.Timeout = 200 * time.Millisecond
	res := h.d.Deliver(context.Background(), ep, sampleMessage)
	if res.Outcome != OutcomeRetry || !errors.Is(res.Err, context.DeadlineExceeded) || res.Status != 0 {
		t.Fatalf("result %+v, want a retry after the deadline", res)
	}
	if strings.Contains(res.Err.Error(), srv.URL) {
		t.Fatalf("error shows the URL: %v", res.Err)
	}
}

func TestDeliverTargetHangingMidBodyIsRetried(t *testing.T) {
	srv := serveOn(t, "127.0.0.2", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"reply":"half`)
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	}))
	h := newHarness(t, ClientOptions{})
	ep := endpoint(t, srv.URL, FormatJSON, true)
	ep.Timeout = 200 * time.Millisecond
	res := h.d.Deliver(context.Background(), ep, sampleMessage)
	if res.Outcome != OutcomeRetry || res.Status != 200 || res.HasReply || !errors.Is(res.Err, context.DeadlineExceeded) {
		t.Fatalf("result %+v, want a retry", res)
	}
}

func TestDeliverGarbageReplies(t *testing.T) {
	cases := []struct {
		format Format
		ct     string
		body   string
	}{
		{FormatRelaycc, "application/json", "\x00\x01garbage"},
		{FormatRelaycc, "application/json", `{"ok":false}`},
		{FormatJSON, "application/json", "<html>oops</html>"},
		{FormatJSON, "text/plain", "\xff\xfe\xfd"},
	}
	for i, c := range cases {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			srv := serveOn(t, "127.0.0.2", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", c.ct)
				io.WriteString(w, c.body)
			}))
			h := newHarness(t, ClientOptions{})
			res := h.d.Deliver(context.Background(), endpoint(t, srv.URL, c.format, true), sampleMessage)
			if res.Outcome != OutcomeBadReply || res.Err == nil || res.HasReply {
				t.Fatalf("result %+v, want bad_reply", res)
			}
			if h.outcomes(OutcomeBadReply) != 1 {
				t.Fatal("bad_reply not counted")
			}
		})
	}
}

func TestDeliverEndlessBodyIsCutAtTheLimit(t *testing.T) {
	var written int64
	var mu sync.Mutex
	srv := serveOn(t, "127.0.0.2", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		chunk := []byte(strings.Repeat("a", 32<<10))
		for {
			n, err := w.Write(chunk)
			mu.Lock()
			written += int64(n)
			mu.Unlock()
			if err != nil {
				return
			}
			w.(http.Flusher).Flush()
		}
	}))
	m, _ := NewMetrics(prometheus.NewRegistry())
	d := NewDeliverer(Config{Client: NewClient(ClientOptions{AllowPrefixes: []netip.Prefix{netip.MustParsePrefix("127.0.0.2/32")}}),
		Metrics: m, MaxResponseBytes: 64 << 10})
	res := d.Deliver(context.Background(), endpoint(t, srv.URL, FormatJSON, true), sampleMessage)
	if res.Outcome != OutcomeBadReply || !errors.Is(res.Err, ErrResponseTooLarge) {
		t.Fatalf("result %+v, want bad_reply with ErrResponseTooLarge", res)
	}
}

func TestDeliverRefusesInternalAddresses(t *testing.T) {
	// internal stands for a service on 127.0.0.1 that must never be hit.
	internal := &recordingServer{}
	internalSrv := serveOn(t, "127.0.0.1", internal.handler(func(w http.ResponseWriter, r *http.Request) {}))
	_, internalPort, _ := net.SplitHostPort(internalSrv.Listener.Addr().String())

	redirect := func(to string, code int) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, to, code) })
	}
	cases := []struct {
		name string
		url  func(t *testing.T) string
	}{
		{"direct loopback", func(t *testing.T) string { return internalSrv.URL }},
		{"name resolving to loopback", func(t *testing.T) string { return "http://localhost:" + internalPort + "/" }},
		{"ipv4-mapped loopback", func(t *testing.T) string { return "http://[::ffff:127.0.0.1]:" + internalPort + "/" }},
		{"redirect to loopback", func(t *testing.T) string {
			return serveOn(t, "127.0.0.2", redirect(internalSrv.URL+"/admin", http.StatusTemporaryRedirect)).URL
		}},
		{"redirect to metadata service", func(t *testing.T) string {
			return serveOn(t, "127.0.0.2", redirect("http://169.254.169.254/latest/meta-data/", http.StatusFound)).URL
		}},
		{"redirect to private range", func(t *testing.T) string {
			return serveOn(t, "127.0.0.2", redirect("http://10.0.0.1:8080/", http.StatusPermanentRedirect)).URL
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := newHarness(t, ClientOptions{})
			res := h.d.Deliver(context.Background(), endpoint(t, c.url(t), FormatJSON, true), sampleMessage)
			if res.Outcome != OutcomeBlocked || !errors.Is(res.Err, ErrBlockedAddress) {
				t.Fatalf("result %+v, want blocked", res)
			}
			if h.outcomes(OutcomeBlocked) != 1 {
				t.Fatal("blocked not counted")
			}
		})
	}
	if n := len(internal.requests()); n != 0 {
		t.Fatalf("the internal service got %d requests", n)
	}

	// With private targets allowed (development), the same service answers.
	h := newHarness(t, ClientOptions{AllowPrivate: true})
	if res := h.d.Deliver(context.Background(), endpoint(t, internalSrv.URL, FormatJSON, false), sampleMessage); res.Outcome != OutcomeDelivered {
		t.Fatalf("private allowed: %+v", res)
	}
}

func TestDeliverFollowsLimitedRedirects(t *testing.T) {
	rec := &recordingServer{}
	final := serveOn(t, "127.0.0.2", rec.handler(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "moved fine")
	}))
	hop := serveOn(t, "127.0.0.2", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, final.URL+"/new", http.StatusPermanentRedirect)
	}))
	var loop *httptest.Server
	loop = serveOn(t, "127.0.0.2", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, loop.URL+"/again", http.StatusTemporaryRedirect)
	}))

	h := newHarness(t, ClientOptions{})
	res := h.d.Deliver(context.Background(), endpoint(t, hop.URL, FormatJSON, true), sampleMessage)
	if res.Outcome != OutcomeDelivered || res.Reply != "moved fine" {
		t.Fatalf("one redirect: %+v", res)
	}
	got := rec.requests()
	if len(got) != 1 || Verify(testSecret, got[0].header, got[0].body, time.Now()) != nil {
		t.Fatalf("the redirected request lost its body or signature: %d requests", len(got))
	}

	res = h.d.Deliver(context.Background(), endpoint(t, loop.URL, FormatJSON, true), sampleMessage)
	if res.Outcome != OutcomeBlocked || !errors.Is(res.Err, ErrTooManyRedirects) {
		t.Fatalf("redirect loop: %+v", res)
	}
	refuse := newHarness(t, ClientOptions{MaxRedirects: -1})
	res = refuse.d.Deliver(context.Background(), endpoint(t, hop.URL, FormatJSON, true), sampleMessage)
	if res.Outcome != OutcomeBlocked || !errors.Is(res.Err, ErrTooManyRedirects) {
		t.Fatalf("redirects refused: %+v", res)
	}
}

func TestDeliverRefusesInvalidEndpoints(t *testing.T) {
	h := newHarness(t, ClientOptions{})
	for _, ep := range []Endpoint{
		{URL: "ftp://example.com/", Format: FormatJSON, Secrets: []Secret{mustSecret(t, testSecret)}},
		{URL: "/relative", Format: FormatJSON, Secrets: []Secret{mustSecret(t, testSecret)}},
		{URL: "http://example.com/", Format: FormatJSON},
	} {
		res := h.d.Deliver(context.Background(), ep, sampleMessage)
		if res.Outcome != OutcomeInvalid || !errors.Is(res.Err, ErrInvalidEndpoint) {
			t.Errorf("endpoint %q: %+v", ep.URL, res)
		}
	}
}

func TestDialGuard(t *testing.T) {
	g := dialGuard{allow: []netip.Prefix{netip.MustParsePrefix("10.9.0.0/16")}}
	for addr, ok := range map[string]bool{
		"8.8.8.8:443":           true,
		"[2606:4700::1111]:443": true,
		"10.9.1.2:80":           true,
		"127.0.0.1:80":          false,
		"[::1]:80":              false,
		"[::ffff:127.0.0.1]:80": false,
		"169.254.169.254:80":    false,
		"10.0.0.1:80":           false,
		"192.168.1.1:80":        false,
		"100.64.0.1:80":         false,
		"0.0.0.0:80":            false,
		"[fd00::1]:80":          false,
		"[fe80::1]:80":          false,
		"not-an-address":        false,
		"example.com:80":        false,
	} {
		err := g.control("tcp", addr, nil)
		if (err == nil) != ok {
			t.Errorf("control(%s) = %v, want allowed=%v", addr, err, ok)
		}
		if err != nil && !errors.Is(err, ErrBlockedAddress) {
			t.Errorf("control(%s) = %v, want ErrBlockedAddress", addr, err)
		}
	}
	if err := (dialGuard{allowPrivate: true}).control("tcp", "127.0.0.1:80", nil); err != nil {
		t.Fatalf("private allowed: %v", err)
	}
}
