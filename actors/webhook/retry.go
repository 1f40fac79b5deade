package webhook

import (
	"math"
	"math/rand/v2"
	"time"
)

// RetryPolicy schedules the attempts of one delivery: exponential backoff
// with full jitter and a cap, bounded by a number of attempts and by the
// delivery's age. A throttled attempt waits at least its Retry-After,
// itself capped.
type RetryPolicy struct {
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

// Next returns when to try a delivery again after attempts attempts (≥ 1),
// the first of them at first, the last one ending now with result r. dead
// is true when the delivery must not be tried again: the outcome is not
// retryable, the attempts are used up, or the next attempt would be later
// than first+MaxAge.
func (p RetryPolicy) Next(attempts int, first, now time.Time, r Result) (next time.Time, dead bool) {
	p = p.withDefaults()
	if !r.Outcome.Retryable() || attempts >= p.MaxAttempts {
		return time.Time{}, true
	}
	u := p.Rand()
	if u < 0 || u >= 1 || math.IsNaN(u) {
		u = 0
	}
	delay := time.Duration(u * float64(p.Ceiling(attempts)))
	if r.Outcome == OutcomeThrottled && r.RetryAfter > 0 {
		wait := min(r.RetryAfter, p.MaxRetryAfter)
		delay = max(delay, wait)
	}
	next = now.Add(delay)
	if next.Sub(first) > p.MaxAge {
		return time.Time{}, true
	}
	return next, false
}
