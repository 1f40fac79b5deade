package plugin

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/xmtpbridge/bridge/actors/plugin/plugintest"
	"github.com/xmtpbridge/bridge/actors/webhook"
)

// TestHostilePluginsAreContained runs each hostile plug-in on one bridge
// while another bridge's plug-in keeps answering: each failure is counted
// with its reason, the binding's onError decides the delivery, and the
// other bridge is never stalled or failed.
func TestHostilePluginsAreContained(t *testing.T) {
	h := newHarness(t, Config{Timeout: 2 * time.Second, MaxOutput: 64 << 10})
	// A listener the socket plug-in would reach if it could.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var accepted atomic.Int64
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			c.Close()
		}
	}()
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)

	hostile := h.upload("hostile", plugintest.Build(t, plugintest.Hostile, ""))
	good := h.upload("bot", bot(t))
	badID, badAddr := h.bridge()
	goodID, goodAddr := h.bridge()
	// The good plug-in gets a generous timeout of its own host call
	// budget: it shares the host and its limits.
	h.bind(goodID, OnMessage, good.ID, map[string]string{"mode": "help"}, ErrorDeadLetter)

	// Warm the good bridge so that its calls below are warm calls.
	if res := h.send(goodAddr, "help"); !res.HasReply {
		t.Fatalf("good bridge warm-up: %+v", res)
	}

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var goodCalls, goodFailures atomic.Int64
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			res := h.send(goodAddr, "help")
			goodCalls.Add(1)
			if !res.HasReply || res.Outcome != webhook.OutcomeDelivered {
				goodFailures.Add(1)
				t.Errorf("good bridge failed during hostile calls: %+v", res)
			}
		}
	}()

	cases := []struct {
		mode    string
		config  map[string]string
		reasons []string
		onError OnError
	}{
		{"loop", nil, []string{ReasonTimeout}, ErrorDrop},
		{"bomb", nil, []string{ReasonMemory}, ErrorDeadLetter},
		{"trap", nil, []string{ReasonTrap}, ErrorForward},
		// 100 MB does not fit in the memory limit.
		{"bigout", nil, []string{ReasonMemory, ReasonTrap}, ErrorDrop},
		// 128 KiB fits in memory but not in the 64 KiB output limit.
		{"bigout", map[string]string{"size": strconv.Itoa(128 << 10)}, []string{ReasonOutputLimit}, ErrorDrop},
		{"badjson", nil, []string{ReasonBadOutput}, ErrorForward},
		{"file", nil, []string{ReasonTrap}, ErrorDeadLetter},
		// Extism's HTTP function is off: no allowed host.
		{"http", map[string]string{"port": port}, []string{ReasonTrap}, ErrorForward},
		// Go's wasip1 net package waits for a socket it never gets.
		{"socket", map[string]string{"port": port}, []string{ReasonTrap, ReasonTimeout}, ErrorDrop},
	}
	for _, c := range cases {
		cfg := map[string]string{"mode": c.mode}
		for k, v := range c.config {
			cfg[k] = v
		}
		h.bind(badID, OnMessage, hostile.ID, cfg, c.onError)
		before := map[string]float64{}
		for _, r := range reasons {
			before[r] = h.errorsOf(OnMessage, r)
		}
		hits := h.hits.Load()
		start := time.Now()
		res := h.send(badAddr, "hello")
		took := time.Since(start)
		counted := ""
		for _, r := range reasons {
			if h.errorsOf(OnMessage, r) > before[r] {
				counted = r
			}
		}
		ok := false
		for _, r := range c.reasons {
			ok = ok || counted == r
		}
		if !ok {
			t.Errorf("%s %v: counted reason %q, want one of %v", c.mode, c.config, counted, c.reasons)
		}
		switch c.onError {
		case ErrorDrop:
			if res.Outcome != webhook.OutcomeDelivered || res.HasReply || h.hits.Load() != hits {
				t.Errorf("%s: onError drop gave %+v and %d target hits", c.mode, res, h.hits.Load()-hits)
			}
		case ErrorDeadLetter:
			if res.Outcome != webhook.OutcomeRejected || res.Err == nil {
				t.Errorf("%s: onError dead_letter gave %+v", c.mode, res)
			}
		case ErrorForward:
			if res.Outcome != webhook.OutcomeDelivered || res.Reply != "from the endpoint" {
				t.Errorf("%s: onError forward gave %+v", c.mode, res)
			}
		}
		// The wall-time limit holds (with room for a loaded machine).
		if took > 10*time.Second {
			t.Errorf("%s: the call took %s", c.mode, took)
		}
	}
	if accepted.Load() != 0 {
		t.Errorf("the socket plug-in reached the listener %d times", accepted.Load())
	}
	// The good bridge kept answering throughout.
	waitFor(t, 60*time.Second, "good calls during the hostile ones", func() bool { return goodCalls.Load() >= 3 })
	close(stop)
	wg.Wait()
	if goodFailures.Load() != 0 {
		t.Fatalf("%d of %d good calls failed", goodFailures.Load(), goodCalls.Load())
	}
}

// TestAllowedHostsOpenExtismHTTPUnderTheEgressPolicy: an operator's
// allowed host is reachable through Extism's HTTP function, unless the
// egress policy refuses it, and then the call fails without a request.
func TestAllowedHostsOpenExtismHTTPUnderTheEgressPolicy(t *testing.T) {
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		_, _ = w.Write([]byte("pong"))
	}))
	defer srv.Close()
	port := strconv.Itoa(srv.Listener.Addr().(*net.TCPAddr).Port)
	wasm := plugintest.Build(t, plugintest.Hostile, "")

	open := newHarness(t, Config{Timeout: 5 * time.Second, AllowedHosts: []string{"127.0.0.1"}})
	id, addr := open.bridge()
	p := open.upload("hostile", wasm)
	open.bind(id, OnMessage, p.ID, map[string]string{"mode": "http", "port": port}, ErrorDrop)
	if res := open.send(addr, "ping"); res.Reply != "pong" || hits.Load() != 1 {
		t.Fatalf("allowed host: %+v, %d requests", res, hits.Load())
	}

	refused := newHarness(t, Config{Timeout: 5 * time.Second, AllowedHosts: []string{"127.0.0.1"},
		HostAllowed: func(context.Context, string) error { return errors.New("not public") }})
	id, addr = refused.bridge()
	p = refused.upload("hostile", wasm)
	refused.bind(id, OnMessage, p.ID, map[string]string{"mode": "http", "port": port}, ErrorDrop)
	before := refused.errorsOf(OnMessage, ReasonTrap)
	if res := refused.send(addr, "ping"); res.HasReply || hits.Load() != 1 || refused.errorsOf(OnMessage, ReasonTrap) != before+1 {
		t.Fatalf("refused host: %+v, %d requests", res, hits.Load())
	}
}
