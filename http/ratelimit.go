package http

import (
	"time"

	"github.com/gofiber/fiber/v2"
)

// signupWindow is the window the signup limit counts in.
const signupWindow = time.Minute

// signupLimiter limits signups per client IP. The count is kept in
// Postgres, so the limit holds for the whole cluster, whichever node a
// client reaches; a signup that cannot be counted is refused with 503, as
// the signup itself would fail without the store.
func (s *Server) signupLimiter() fiber.Handler {
	return func(c *fiber.Ctx) error {
		n, err := s.opts.Store.CountSignup(c.UserContext(), c.IP(), signupWindow)
		if err != nil {
			return &Error{Status: fiber.StatusServiceUnavailable, Code: CodeUnavailable, Message: "signup is unavailable, try again later", Err: err}
		}
		if n > s.opts.SignupRatePerMinute {
			return &Error{Status: fiber.StatusTooManyRequests, Code: CodeRateLimited, RetryAfter: 60,
				Message: "too many signups from this address, try again in a minute"}
		}
		return c.Next()
	}
}
