package webhook

import (
	"math"
	"math/rand/v2"
	"time"
)

// RetryMode says which failed answers of an endpoint are retried.
type RetryMode string

// The retry modes of a bridge.
const (
	// RetryStandard follows Standard Webhooks: every non-2xx answer but
	// 410 is retried on the schedule, as are network errors and timeouts.
	// It is the default.
	RetryStandard RetryMode = "standard"
	// RetryFinal4xx makes a 4xx answer other than 429 (and 410, which is
	// always final) final at once: for endpoints that answer 4xx only to
	// requests they will never accept.
	RetryFinal4xx RetryMode = "final4xx"
)

// Valid reports whether m is a known retry mode; "" is the default.
func (m RetryMode) Valid() bool { return m == "" || m == RetryStandard || m == RetryFinal4xx }

// RetryPolicy schedules the attempts of one delivery: exponential backoff
// with full jitter and a cap, bounded by a number of attempts and by the
// delivery's age. It is the one place that decides whether an attempt is
// retried and when:
//
//   - 2xx is final (delivered); 410 is final and the caller disables the
//     endpoint; a request that could not be made, or a target the SSRF
//     guard refused, is final;
//   - every other answer (3xx, 4xx, 5xx) and every network error or
//     timeout is retried, unless Mode is RetryFinal4xx and the answer is
//     a 4xx other than 429;
//   - after a 429 or a 5xx, the next attempt waits at least the answer's
//     Retry-After, capped at MaxRetryAfter.
type RetryPolicy struct {
	// Mode is the bridge's retry mode; "" means RetryStandard.
	Mode RetryMode
	// Initial is the backoff ceiling after the first attempt; default 1s.
	Initial time.Duration
	// Max caps the backoff ceiling; default 1h.
	Max time.Duration
	// MaxAttempts bounds the attempts; default 12.
	MaxAttempts int
	// MaxAge bounds the time from the first attempt to the last; default
	// 24h.
	MaxAge time.Duration
	// MaxRetryAfter caps a target's Retry-After; default 1h.
	MaxRetryAfter time.Duration
	// Rand returns uniform numbers in [0, 1); nil means math/rand/v2.
	Rand func() float64
}

func (p RetryPolicy) withDefaults() RetryPolicy {
	if p.Initial <= 0 {
		p.Initial = time.Second
	}
	if p.Max <= 0 {
		p.Max = time.Hour
	}
	if p.Max < p.Initial {
		p.Max = p.Initial
	}
	if p.MaxAttempts <= 0 {
		p.MaxAttempts = 12
	}
	if p.MaxAge <= 0 {
		p.MaxAge = 24 * time.Hour
	}
	if p.MaxRetryAfter <= 0 {
		p.MaxRetryAfter = time.Hour
	}
	if p.Rand == nil {
		p.Rand = rand.Float64
	}
	return p
}

// Ceiling returns the backoff ceiling after the given number of attempts
// (≥ 1): Initial·2^(attempts-1), capped at Max. The jittered delay lies in
// [0, Ceiling).
func (p RetryPolicy) Ceiling(attempts int) time.Duration {
	p = p.withDefaults()
	if attempts < 1 {
		attempts = 1
	}
	d := float64(p.Initial) * math.Pow(2, float64(attempts-1))
	if math.IsInf(d, 0) || d >= float64(p.Max) {
		return p.Max
	}
	return time.Duration(d)
}

// Final reports whether r ends the delivery whatever the attempt budget:
// its outcome is not retryable, or the mode makes its 4xx final.
func (p RetryPolicy) Final(r Result) bool {
	if !r.Outcome.Retryable() {
		return true
	}
	return p.Mode == RetryFinal4xx && r.Status >= 400 && r.Status < 500 && r.Status != 429
}

// honoursRetryAfter reports whether an answer's Retry-After sets the
// earliest next attempt: 429 and 5xx, as RFC 9110 and Standard Webhooks
// have it.
func honoursRetryAfter(status int) bool { return status == 429 || status >= 500 && status <= 599 }

// Next returns when to try a delivery again after attempts attempts (≥ 1),
// the first of them at first, the last one ending now with result r. dead
// is true when the delivery must not be tried again: r is final (see
// Final), the attempts are used up, or the next attempt would be later
// than first+MaxAge.
func (p RetryPolicy) Next(attempts int, first, now time.Time, r Result) (next time.Time, dead bool) {
	p = p.withDefaults()
	if p.Final(r) || attempts >= p.MaxAttempts {
		return time.Time{}, true
	}
	u := p.Rand()
	if u < 0 || u >= 1 || math.IsNaN(u) {
		u = 0
	}
	delay := time.Duration(u * float64(p.Ceiling(attempts)))
	if r.RetryAfter > 0 && honoursRetryAfter(r.Status) {
		wait := min(r.RetryAfter, p.MaxRetryAfter)
		delay = max(delay, wait)
	}
	next = now.Add(delay)
	if next.Sub(first) > p.MaxAge {
		return time.Time{}, true
	}
	return next, false
}
