package http

import (
	"github.com/gofiber/fiber/v2"
)

// adminListAccounts lists every account, a page at a time.
func (s *Server) adminListAccounts(c *fiber.Ctx) error {
	p, err := page(c)
	if err != nil {
		return err
	}
	accounts, next, err := s.opts.Store.ListAccounts(c.UserContext(), p)
	if err != nil {
		return storeError(err, "account")
	}
	out := make([]accountView, 0, len(accounts))
	for _, a := range accounts {
		out = append(out, viewAccount(a))
	}
	return c.JSON(fiber.Map{"ok": true, "accounts": out, "nextCursor": next})
}

// adminListBridges lists every bridge of every account, a page at a time.
func (s *Server) adminListBridges(c *fiber.Ctx) error {
	p, err := page(c)
	if err != nil {
		return err
	}
	bridges, next, err := s.opts.Store.ListAllBridges(c.UserContext(), p)
	if err != nil {
		return storeError(err, "bridge")
	}
	return c.JSON(fiber.Map{"ok": true, "bridges": viewBridges(bridges), "nextCursor": next, "node": s.opts.NodeID})
}
