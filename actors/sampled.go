package actors

import (
	"sync"
	"time"
)

// sampled lets a log line through at most once per period and counts the
// ones it held back, so hostile input that arrives in bulk costs a counter,
// not a line per envelope. One sampled serves a whole node; it is safe for
// concurrent use.
type sampled struct {
	period time.Duration

	mu         sync.Mutex
	last       time.Time
	suppressed int
}

func newSampled(period time.Duration) *sampled { return &sampled{period: period} }

// allow reports whether a line may be written now and, if so, how many
// were held back since the last one.
func (s *sampled) allow(now time.Time) (bool, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.last.IsZero() && now.Sub(s.last) < s.period {
		s.suppressed++
		return false, 0
	}
	n := s.suppressed
	s.last, s.suppressed = now, 0
	return true, n
}
