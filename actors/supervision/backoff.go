package supervision

import (
	"math"
	"time"
)

// Backoff is a capped exponential delay with jitter. The nominal delay
// before the n-th consecutive restart is Initial·Multiplier^(n-1), capped
// at Max; the jitter then takes a random share of up to Jitter of it away,
// so restarts of many actors that failed together spread out.
type Backoff struct {
	// Initial is the nominal delay before the first restart.
	Initial time.Duration
	// Max caps the nominal delay.
	Max time.Duration
	// Multiplier is the growth factor between consecutive restarts; values
	// below 1 mean 2.
	Multiplier float64
	// Jitter is the share of the nominal delay, between 0 and 1, that is
	// random: the delay lies in [(1-Jitter)·nominal, nominal].
	Jitter float64
}

// DefaultBackoff is the backoff the actor runtime uses unless told
// otherwise: 100ms doubling to 30s, half of it random.
var DefaultBackoff = Backoff{Initial: 100 * time.Millisecond, Max: 30 * time.Second, Multiplier: 2, Jitter: 0.5}

// Nominal returns the delay before the n-th consecutive restart (n ≥ 1)
// before jitter.
func (b Backoff) Nominal(n int) time.Duration {
	if n < 1 {
		n = 1
	}
	initial, max := b.Initial, b.Max
	if initial <= 0 {
		initial = DefaultBackoff.Initial
	}
	if max < initial {
		max = initial
	}
	m := b.Multiplier
	if m < 1 {
		m = 2
	}
	d := float64(initial) * math.Pow(m, float64(n-1))
	if math.IsInf(d, 0) || math.IsNaN(d) || d >= float64(max) {
		return max
	}
	return time.Duration(d)
}

// Delay returns the jittered delay before the n-th consecutive restart.
// u is a uniform random number in [0, 1); the result lies in
// [(1-Jitter)·Nominal(n), Nominal(n)].
func (b Backoff) Delay(n int, u float64) time.Duration {
	nominal := b.Nominal(n)
	j := b.Jitter
	if j < 0 || math.IsNaN(j) {
		j = 0
	}
	if j > 1 {
		j = 1
	}
	if u < 0 || math.IsNaN(u) {
		u = 0
	}
	if u >= 1 {
		u = math.Nextafter(1, 0)
	}
	return nominal - time.Duration(float64(nominal)*j*u)
}
