package webhook

import (
	"net/http"
	"testing"
	"time"
)

func fixedRand(u float64) func() float64 { return func() float64 { return u } }

func TestRetryPolicyBackoffGrowsToCapWithFullJitter(t *testing.T) {
	p := RetryPolicy{Initial: time.Second, Max: time.Minute, MaxAttempts: 100, MaxAge: 1000 * time.Hour, Rand: fixedRand(0.5)}
	first := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	now := first
	want := []time.Duration{500 * time.Millisecond, time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second,
		16 * time.Second, 30 * time.Second, 30 * time.Second, 30 * time.Second}
	for i, w := range want {
		next, dead := p.Next(i+1, first, now, Result{Outcome: OutcomeRetry})
		if dead || next.Sub(now) != w {
			t.Fatalf("after attempt %d: next in %v (dead %v), want %v", i+1, next.Sub(now), dead, w)
		}
		now = next
	}
	// Full jitter: the delay spans [0, ceiling).
	lo := RetryPolicy{Initial: time.Second, Max: time.Minute, Rand: fixedRand(0)}
	if next, _ := lo.Next(3, first, first, Result{Outcome: OutcomeRetry}); next != first {
		t.Fatalf("jitter 0 gives %v, want no delay", next.Sub(first))
	}
	hi := RetryPolicy{Initial: time.Second, Max: time.Minute, Rand: fixedRand(0.999)}
	if next, _ := hi.Next(3, first, first, Result{Outcome: OutcomeRetry}); next.Sub(first) >= 4*time.Second || next.Sub(first) < 3900*time.Millisecond {
		t.Fatalf("jitter 0.999 gives %v, want just under 4s", next.Sub(first))
	}
	// Real randomness stays under the ceiling.
	real := RetryPolicy{Initial: time.Second, Max: time.Minute}
	for n := 1; n < 12; n++ {
		next, dead := real.Next(n, first, first, Result{Outcome: OutcomeRetry})
		if dead || next.Sub(first) < 0 || next.Sub(first) >= real.Ceiling(n) {
			t.Fatalf("attempt %d: %v outside [0, %v)", n, next.Sub(first), real.Ceiling(n))
		}
	}
}

func TestRetryPolicyBounds(t *testing.T) {
	first := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	p := RetryPolicy{Initial: time.Minute, Max: time.Hour, MaxAttempts: 5, MaxAge: 2 * time.Hour, MaxRetryAfter: 10 * time.Minute, Rand: fixedRand(0.5)}
	retry := Result{Outcome: OutcomeRetry}
	if _, dead := p.Next(5, first, first, retry); !dead {
		t.Fatal("the fifth attempt of five was not the last")
	}
	if _, dead := p.Next(4, first, first, retry); dead {
		t.Fatal("the fourth attempt of five was the last")
	}
	if _, dead := p.Next(2, first, first.Add(2*time.Hour-10*time.Second), retry); !dead {
		t.Fatal("a retry past MaxAge was scheduled")
	}
	for _, o := range []Outcome{OutcomeDelivered, OutcomeBadReply, OutcomeGone, OutcomeBlocked, OutcomeInvalid} {
		if _, dead := p.Next(1, first, first, Result{Outcome: o}); !dead {
			t.Fatalf("outcome %s was retried", o)
		}
	}
	// Retry-After is honoured when it is longer than the backoff, and capped.
	next, _ := p.Next(1, first, first, Result{Outcome: OutcomeThrottled, Status: 429, RetryAfter: 5 * time.Minute})
	if next.Sub(first) != 5*time.Minute {
		t.Fatalf("Retry-After 5m gave %v", next.Sub(first))
	}
	next, _ = p.Next(1, first, first, Result{Outcome: OutcomeThrottled, Status: 429, RetryAfter: 48 * time.Hour})
	if next.Sub(first) != 10*time.Minute {
		t.Fatalf("Retry-After 48h gave %v, want the 10m cap", next.Sub(first))
	}
	next, _ = p.Next(1, first, first, Result{Outcome: OutcomeThrottled, Status: 429, RetryAfter: time.Second})
	if next.Sub(first) != 30*time.Second {
		t.Fatalf("short Retry-After gave %v, want the backoff 30s", next.Sub(first))
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	cases := []struct {
		v  string
		d  time.Duration
		ok bool
	}{
		{"0", 0, true},
		{"120", 2 * time.Minute, true},
		{" 5 ", 5 * time.Second, true},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second, true},
		{"Monday, 23-Nov-26 12:01:00 GMT", time.Minute, true},
		{now.Add(-time.Hour).Format(http.TimeFormat), 0, true},
		{"99999999999999999999999", maxRetryAfterSeconds * time.Second, true},
		{"", 0, false},
		{"-5", 0, false},
		{"1.5", 0, false},
		{"soon", 0, false},
	}
	for _, c := range cases {
		d, ok := ParseRetryAfter(c.v, now)
		if d != c.d || ok != c.ok {
			t.Errorf("ParseRetryAfter(%q) = %v, %v; want %v, %v", c.v, d, ok, c.d, c.ok)
		}
	}
}

// TestRetryPolicyFollowsStandardWebhooks checks which answers are retried:
// every non-2xx but 410 in the standard mode, 4xx (but 429) final in the
// final4xx mode, and Retry-After honoured after 429 and 5xx only.
func TestRetryPolicyFollowsStandardWebhooks(t *testing.T) {
	first := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	std := RetryPolicy{Initial: time.Second, Max: time.Minute, MaxRetryAfter: 10 * time.Minute, Rand: fixedRand(0)}
	strict := std
	strict.Mode = RetryFinal4xx
	cases := []struct {
		status            int
		retried, strictly bool
	}{
		{400, true, false}, {401, true, false}, {404, true, false}, {418, true, false}, {304, true, true},
		{429, true, true}, {500, true, true}, {502, true, true}, {503, true, true}, {410, false, false},
	}
	for _, c := range cases {
		r := Result{Outcome: classifyStatus(c.status), Status: c.status}
		if _, dead := std.Next(1, first, first, r); dead == c.retried {
			t.Errorf("standard mode: %d retried %v, want %v", c.status, !dead, c.retried)
		}
		if _, dead := strict.Next(1, first, first, r); dead == c.strictly {
			t.Errorf("final4xx mode: %d retried %v, want %v", c.status, !dead, c.strictly)
		}
	}
	for _, status := range []int{429, 500, 503, 504} {
		r := Result{Outcome: classifyStatus(status), Status: status, RetryAfter: 2 * time.Minute}
		if next, _ := std.Next(1, first, first, r); next.Sub(first) != 2*time.Minute {
			t.Errorf("%d with Retry-After 2m waits %v", status, next.Sub(first))
		}
		r.RetryAfter = 24 * time.Hour
		if next, _ := std.Next(1, first, first, r); next.Sub(first) != 10*time.Minute {
			t.Errorf("%d with Retry-After 24h waits %v, want the 10m cap", status, next.Sub(first))
		}
	}
	r := Result{Outcome: OutcomeRejected, Status: 400, RetryAfter: 2 * time.Minute}
	if next, _ := std.Next(1, first, first, r); next.Sub(first) != 0 {
		t.Errorf("a 400's Retry-After was honoured: waits %v", next.Sub(first))
	}
	for _, m := range []RetryMode{"", RetryStandard, RetryFinal4xx} {
		if !m.Valid() {
			t.Errorf("mode %q is not valid", m)
		}
	}
	if RetryMode("never").Valid() {
		t.Error(`mode "never" is valid`)
	}
}
