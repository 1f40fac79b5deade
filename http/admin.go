package http

import (
	"errors"

	"github.com/gofiber/fiber/v2"

	"github.com/xmtpbridge/bridge/persistence"
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

// adminListBridges lists every bridge of every account, a page at a time,
// or those of one account (?account=ID, or ?account=relaycc).
func (s *Server) adminListBridges(c *fiber.Ctx) error {
	p, err := page(c)
	if err != nil {
		return err
	}
	if account := c.Query("account"); account != "" {
		return s.adminListBridgesOf(c, account, p)
	}
	bridges, next, err := s.opts.Store.ListAllBridges(c.UserContext(), p)
	if err != nil {
		return storeError(err, "bridge")
	}
	return c.JSON(fiber.Map{"ok": true, "bridges": viewBridges(bridges), "nextCursor": next, "node": s.opts.NodeID})
}

// adminListBridgesOf lists the bridges of one account, when the account
// parameter names one: an account id, or "relaycc" for the system account
// that owns every bridge made by relaycc /signup.
func (s *Server) adminListBridgesOf(c *fiber.Ctx, account string, p persistence.Page) error {
	accountID := account
	if account == relayccAccount {
		acct, err := s.opts.Store.EnsureSystemAccount(c.UserContext(), relayccAccount)
		if err != nil {
			return storeError(err, "account")
		}
		accountID = acct.ID
	}
	bridges, next, err := s.opts.Store.ListBridges(c.UserContext(), accountID, p)
	if err != nil {
		return storeError(err, "bridge")
	}
	return c.JSON(fiber.Map{"ok": true, "bridges": viewBridges(bridges), "nextCursor": next, "node": s.opts.NodeID})
}

// moveBridgeRequest is the body of POST /v1/admin/bridges/{id}/move.
type moveBridgeRequest struct {
	AccountID *string `json:"accountId"`
}

// adminMoveBridge moves a bridge (typically a relaycc one) into an
// ordinary account, whose API key then manages it.
func (s *Server) adminMoveBridge(c *fiber.Ctx) error {
	var req moveBridgeRequest
	if err := decodeBody(c, &req); err != nil {
		return err
	}
	if req.AccountID == nil || *req.AccountID == "" {
		return invalidField("accountId", "is required")
	}
	b, err := s.opts.Store.MoveBridge(c.UserContext(), c.Params("id"), *req.AccountID, s.opts.MaxBridgesPerAccount)
	switch {
	case errors.Is(err, persistence.ErrSystemAccount):
		return invalidField("accountId", "names a system account; move the bridge into an ordinary account")
	case err != nil:
		return storeError(err, "bridge")
	}
	s.log.Info("bridge moved", "bridge", b.ID, "account", b.AccountID)
	return c.JSON(fiber.Map{"ok": true, "bridge": viewBridge(b)})
}
