package http

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/xmtpbridge/bridge/persistence"
)

// localAccount is the key under which requireAPIKey stores the caller's
// account in the request locals.
const localAccount = "bridge.account"

// localAPIKey is the key under which requireAPIKey stores the id of the
// caller's API key.
const localAPIKey = "bridge.apikey"

// bearerToken returns the token of an "Authorization: Bearer" header.
func bearerToken(c *fiber.Ctx) (string, bool) {
	h := c.Get(fiber.HeaderAuthorization)
	scheme, token, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	return token, token != ""
}

// secretEqual compares a presented secret with the expected one in
// constant time. Hashing first makes the time independent of the lengths
// too. An empty expected secret matches nothing.
func secretEqual(presented, expected string) bool {
	if expected == "" {
		return false
	}
	a := sha256.Sum256([]byte(presented))
	b := sha256.Sum256([]byte(expected))
	return subtle.ConstantTimeCompare(a[:], b[:]) == 1
}

// requireAPIKey authenticates the caller by API key; the store looks the key
// up by its hash.
func (s *Server) requireAPIKey(c *fiber.Ctx) error {
	token, ok := bearerToken(c)
	if !ok {
		return unauthorized("missing API key: send Authorization: Bearer <api key>")
	}
	acct, key, err := s.opts.Store.AccountByAPIKey(c.UserContext(), token)
	if errors.Is(err, persistence.ErrNotFound) {
		return unauthorized("invalid API key")
	}
	if err != nil {
		return internal(err)
	}
	c.Locals(localAccount, acct)
	c.Locals(localAPIKey, key.ID)
	return c.Next()
}

// account returns the account requireAPIKey authenticated.
func account(c *fiber.Ctx) persistence.Account {
	a, _ := c.Locals(localAccount).(persistence.Account)
	return a
}

// apiKeyID returns the id of the API key requireAPIKey authenticated.
func apiKeyID(c *fiber.Ctx) string {
	id, _ := c.Locals(localAPIKey).(string)
	return id
}

// requireAdmin checks the admin token.
func (s *Server) requireAdmin(c *fiber.Ctx) error {
	if s.opts.AdminToken == "" {
		return errorf(fiber.StatusNotFound, CodeAdminDisabled, "admin endpoints are disabled on this node")
	}
	token, ok := bearerToken(c)
	if !ok {
		return unauthorized("missing admin token: send Authorization: Bearer <admin token>")
	}
	if !secretEqual(token, s.opts.AdminToken) {
		return unauthorized("invalid admin token")
	}
	return c.Next()
}
