package http

import "github.com/gofiber/fiber/v2"

// systemIdentities returns the addresses of the system's own XMTP
// identities. They are public: anyone may message them, and an owner needs
// the API identity's address to tell reverse commands apart.
func (s *Server) systemIdentities(c *fiber.Ctx) error {
	return c.JSON(fiber.Map{"ok": true, "identities": fiber.Map{
		"api":    s.opts.Identities.API,
		"canary": s.opts.Identities.Canary,
	}})
}

// bridgeCreated tells the runtime about a new bridge, which activates it
// before the response goes out, so the bridge can be messaged at once.
func (s *Server) bridgeCreated(c *fiber.Ctx, bridgeID string) {
	if s.opts.Events != nil {
		s.opts.Events.BridgeCreated(c.UserContext(), bridgeID)
	}
}
