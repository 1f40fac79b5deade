package http

import (
	"context"
	"errors"
	"io"
	"net"
	nethttp "net/http"
	"strings"
	"testing"
	"time"
)

func TestHealthReadinessAndMetrics(t *testing.T) {
	t.Parallel()
	down := errors.New("postgres unreachable")
	var readyErr error
	h := newHarness(t, func(o *Options) {
		o.Ready = func(context.Context) error { return readyErr }
	})
	h.expect("GET", "/healthz", "", nil, 200, "")
	h.expect("GET", "/readyz", "", nil, 200, "")
	readyErr = down
	h.expect("GET", "/readyz", "", nil, 503, CodeUnavailable)
	h.expect("GET", "/healthz", "", nil, 200, "")
	h.expect("GET", "/no/such/route", "", nil, 404, CodeNotFound)

	// Without a Ready function, readiness pings the store.
	h2 := newHarness(t, nil)
	h2.expect("GET", "/readyz", "", nil, 200, "")
	h2.store.Close()
	h2.expect("GET", "/readyz", "", nil, 503, CodeUnavailable)

	// Metrics are served over a real listener from the injected registry.
	base := h.startReal()
	resp, err := nethttp.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`bridge_http_requests_total{method="GET",route="/readyz",status_class="5xx"} 1`,
		`bridge_http_requests_total{method="GET",route="/healthz",status_class="2xx"} 2`,
		`bridge_http_requests_total{method="GET",route="unmatched",status_class="4xx"} 1`,
		`bridge_http_request_duration_seconds_bucket{method="GET",route="/healthz"`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

func TestShutdownOfRealListener(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- h.srv.Serve(ln) }()
	resp, err := nethttp.Post("http://"+ln.Addr().String()+"/canary", "application/json", strings.NewReader(`{"message":{"content":"x"}}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("canary over a real listener: %d", resp.StatusCode)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := h.srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("serve returned %v after shutdown", err)
	}
}
