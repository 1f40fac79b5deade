package http

import (
	"strings"
	"unicode/utf8"

	"github.com/gofiber/fiber/v2"
)

// createAccountRequest is the body of POST /v1/accounts.
type createAccountRequest struct {
	Name      string `json:"name"`
	SignupKey string `json:"signupKey"`
}

// createAPIKeyRequest is the body of POST /v1/api-keys.
type createAPIKeyRequest struct {
	Name string `json:"name"`
}

// checkName validates a display name.
func checkName(field, name string, required bool) error {
	switch {
	case required && strings.TrimSpace(name) == "":
		return invalidField(field, "is required")
	case !utf8.ValidString(name) || utf8.RuneCountInString(name) > 200:
		return invalidField(field, "must be valid text of at most 200 characters")
	case strings.ContainsAny(name, "\x00"):
		return invalidField(field, "must not contain NUL characters")
	}
	return nil
}

// createAccount signs up a new account and returns its first API key, once.
func (s *Server) createAccount(c *fiber.Ctx) error {
	var req createAccountRequest
	if err := decodeBody(c, &req); err != nil {
		return err
	}
	if !s.opts.SignupOpen {
		if s.opts.SignupKey == "" {
			return errorf(fiber.StatusForbidden, CodeSignupClosed, "signup is closed on this deployment")
		}
		if !secretEqual(req.SignupKey, s.opts.SignupKey) {
			return unauthorized("invalid signup key")
		}
	}
	if err := checkName("name", req.Name, true); err != nil {
		return err
	}
	acct, key, secret, err := s.opts.Store.CreateAccount(c.UserContext(), strings.TrimSpace(req.Name))
	if err != nil {
		return storeError(err, "account")
	}
	s.log.Info("account created", "account", acct.ID)
	return c.Status(fiber.StatusCreated).JSON(fiber.Map{
		"ok": true, "account": viewAccount(acct), "apiKey": secret, "apiKeyInfo": viewAPIKey(key),
	})
}

// getAccount returns the caller's account.
func (s *Server) getAccount(c *fiber.Ctx) error {
	return c.JSON(fiber.Map{"ok": true, "account": viewAccount(account(c))})
}

// listAPIKeys lists the caller's API keys without their secrets.
func (s *Server) listAPIKeys(c *fiber.Ctx) error {
	keys, err := s.opts.Store.ListAPIKeys(c.UserContext(), account(c).ID)
	if err != nil {
		return storeError(err, "account")
	}
	out := make([]apiKeyView, 0, len(keys))
	for _, k := range keys {
		out = append(out, viewAPIKey(k))
	}
	return c.JSON(fiber.Map{"ok": true, "apiKeys": out})
}

// createAPIKey adds an API key to the caller's account and returns it once.
func (s *Server) createAPIKey(c *fiber.Ctx) error {
	var req createAPIKeyRequest
	if err := decodeBody(c, &req); err != nil {
		return err
	}
	if err := checkName("name", req.Name, false); err != nil {
		return err
	}
	key, secret, err := s.opts.Store.CreateAPIKey(c.UserContext(), account(c).ID, req.Name)
	if err != nil {
		return storeError(err, "account")
	}
	return c.Status(fiber.StatusCreated).JSON(fiber.Map{"ok": true, "apiKey": secret, "apiKeyInfo": viewAPIKey(key)})
}

// revokeAPIKey revokes one of the caller's API keys.
func (s *Server) revokeAPIKey(c *fiber.Ctx) error {
	if err := s.opts.Store.RevokeAPIKey(c.UserContext(), account(c).ID, c.Params("id")); err != nil {
		return storeError(err, "api key")
	}
	return c.JSON(fiber.Map{"ok": true})
}
