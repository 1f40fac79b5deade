package http

import (
	"context"
	"time"

	"github.com/gofiber/fiber/v2"
)

// readyTimeout bounds one readiness check.
const readyTimeout = 3 * time.Second

// healthz answers while the process runs.
func (s *Server) healthz(c *fiber.Ctx) error {
	return c.JSON(fiber.Map{"ok": true, "node": s.opts.NodeID})
}

// readyz answers 503 while a dependency is down.
func (s *Server) readyz(c *fiber.Ctx) error {
	ctx, cancel := context.WithTimeout(c.UserContext(), readyTimeout)
	defer cancel()
	check := s.opts.Ready
	if check == nil {
		check = s.opts.Store.Ping
	}
	if err := check(ctx); err != nil {
		s.log.Warn("not ready", "err", err)
		return errorf(fiber.StatusServiceUnavailable, CodeUnavailable, "not ready: a dependency is down")
	}
	return c.JSON(fiber.Map{"ok": true, "node": s.opts.NodeID})
}
