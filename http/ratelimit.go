package http

import (
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"
)

// windowLimiter allows at most max requests per key in each fixed window.
// It keeps one counter per key seen in the current window, so its memory is
// bounded by the number of distinct clients per window.
type windowLimiter struct {
	max    int
	window time.Duration
	now    func() time.Time

	mu     sync.Mutex
	start  time.Time
	counts map[string]int
}

func newWindowLimiter(max int, window time.Duration) *windowLimiter {
	return &windowLimiter{max: max, window: window, now: time.Now, counts: map[string]int{}}
}

// allow counts one request for key and reports whether it is within the
// limit.
func (l *windowLimiter) allow(key string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	if now.Sub(l.start) >= l.window {
		l.start = now
		clear(l.counts)
	}
	if l.counts[key] >= l.max {
		return false
	}
	l.counts[key]++
	return true
}

// signupLimiter limits signups per client IP.
func (s *Server) signupLimiter() fiber.Handler {
	l := newWindowLimiter(s.opts.SignupRatePerMinute, time.Minute)
	return func(c *fiber.Ctx) error {
		if !l.allow(c.IP()) {
			return errorf(fiber.StatusTooManyRequests, CodeRateLimited, "too many signups from this address, try again in a minute")
		}
		return c.Next()
	}
}
