package e2e

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/xmtpbridge/bridge/internal/testkit"
)

// hangingTarget is an owner's endpoint that never answers: each request
// waits until its client goes away or the test ends.
type hangingTarget struct {
	srv     *httptest.Server
	waiting atomic.Int64 // requests that arrived
}

func newHangingTarget(t testing.TB) *hangingTarget {
	h := &hangingTarget{}
	release := make(chan struct{})
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.waiting.Add(1)
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	// Cleanups run last-in first-out: the handlers end, then the server
	// closes.
	t.Cleanup(h.srv.Close)
	t.Cleanup(func() { close(release) })
	return h
}

// TestSecondSignalEndsTheProcessAtOnce sends a node SIGTERM while a
// webhook attempt hangs, so the graceful stop waits for it (up to half of
// BRIDGE_SHUTDOWN_TIMEOUT, a minute here); a second signal then ends the
// process at once, with the status of death by that signal (128 + its
// number, as a shell shows it), saying so, and without the clean stop's
// last log line.
func TestSecondSignalEndsTheProcessAtOnce(t *testing.T) {
	t.Parallel()
	for name, second := range map[string]syscall.Signal{"SIGTERM": syscall.SIGTERM, "SIGINT": syscall.SIGINT} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			c := newCluster(t, map[string]string{"BRIDGE_SHUTDOWN_TIMEOUT": "2m"})
			h := newHangingTarget(t)
			acct := mustCall(t, 201, "POST", c.api+"/v1/accounts", "", map[string]any{"name": "owner", "signupKey": signupKey})
			created := mustCall(t, 201, "POST", c.api+"/v1/bridges", str(acct, "apiKey"), map[string]any{
				"name": "hangs", "forward": map[string]any{"url": h.srv.URL, "bodyFormat": "json", "timeoutMs": 120000},
			})
			b := newBurst(t, c.xmtpGRPC, str(created, "bridge", "address"), 1, 1)
			b.start()
			b.wait(time.Minute)
			testkit.WaitFor(t, time.Minute, func() bool { return h.waiting.Load() >= 1 }, "the webhook attempt at the hanging target")

			p := c.node
			if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			// The kernel merges a signal into one of the same kind still
			// pending, so the second one waits until the first arrived.
			testkit.WaitFor(t, 30*time.Second, func() bool {
				return strings.Contains(p.errs.String(), "stop requested; shutting down")
			}, "the graceful stop to begin")
			if p.exited() {
				t.Fatalf("the node exited before the second signal, though a webhook attempt hangs:\n%s", testkit.Tail(p.errs.String(), 3000))
			}
			sent := time.Now()
			if err := p.cmd.Process.Signal(second); err != nil {
				t.Fatal(err)
			}
			code := p.wait(10 * time.Second)
			took := time.Since(sent)
			t.Logf("second signal %s: exit status %d after %s", name, code, took.Round(time.Millisecond))
			if want := 128 + int(second); code != want {
				t.Errorf("exit status %d after a second %s, want %d", code, name, want)
			}
			if took > 5*time.Second {
				t.Errorf("the process took %s to end after the second signal, want at once", took.Round(time.Millisecond))
			}
			if strings.Contains(p.errs.String(), "bridge stopped") {
				t.Errorf("the node logged a clean stop, though the second signal should have cut the graceful stop short")
			}
			if !strings.Contains(p.errs.String(), "bridge: second signal") {
				t.Errorf("the node did not say that the second signal stopped it at once:\n%s", testkit.Tail(p.errs.String(), 2000))
			}
		})
	}
}
