package http

import (
	"context"
	"errors"
	"regexp"
	"time"
	"unicode/utf8"

	"github.com/gofiber/fiber/v2"

	"github.com/xmtpbridge/bridge/persistence"
)

// DefaultMaxPluginBytes bounds a plug-in upload when Options sets none.
const DefaultMaxPluginBytes = 8 << 20

// DefaultMaxPluginsPerAccount is the plug-in quota of an account when
// Options sets none.
const DefaultMaxPluginsPerAccount = 20

// Plug-in config bounds: keys, values and their number.
const (
	maxPluginConfigKeys  = 32
	maxPluginConfigKey   = 64
	maxPluginConfigValue = 4 << 10
)

// PluginValidator checks an upload and names the extension points it
// exports. actors/plugin.Host implements it; its errors wrap the
// Plugin* sentinels of this package's caller through ClassifyPluginError.
type PluginValidator interface {
	Validate(ctx context.Context, wasm []byte) ([]string, error)
}

// Plug-in upload failures a PluginValidator reports, wrapped.
var (
	// ErrPluginNotWasm means the bytes are not a WebAssembly module.
	ErrPluginNotWasm = errors.New("not a WebAssembly module")
	// ErrPluginInvalid means the module does not compile in the sandbox.
	ErrPluginInvalid = errors.New("invalid WebAssembly module")
	// ErrPluginNoExport means the module exports no extension point.
	ErrPluginNoExport = errors.New("module exports no extension point")
)

var pluginName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// bindPluginRequest is the body of PUT /v1/bridges/:id/plugins/:point.
type bindPluginRequest struct {
	Plugin  string            `json:"plugin"`
	Config  map[string]string `json:"config"`
	OnError string            `json:"onError"`
}

func viewPlugin(p persistence.Plugin) fiber.Map {
	return fiber.Map{"id": p.ID, "name": p.Name, "version": p.Version, "sha256": p.SHA256, "size": p.Size,
		"exports": p.Exports, "createdAt": p.CreatedAt.UTC().Format(time.RFC3339Nano),
		"updatedAt": p.UpdatedAt.UTC().Format(time.RFC3339Nano)}
}

func (s *Server) pluginsOn() error {
	if s.opts.Plugins == nil {
		return errorf(fiber.StatusServiceUnavailable, CodeUnavailable, "plug-ins are not available on this node")
	}
	return nil
}

// uploadPlugin stores the request body, a Wasm module, as the plug-in
// named by the name query parameter: a new plug-in, or the next version of
// the caller's plug-in of that name. requireAPIKey runs before it, so an
// anonymous client never gets its body read (see bodylimit.go).
func (s *Server) uploadPlugin(c *fiber.Ctx) error {
	if err := s.pluginsOn(); err != nil {
		return err
	}
	name := c.Query("name")
	if !pluginName.MatchString(name) {
		return invalidField("name", "must be 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit")
	}
	wasm, err := s.uploadBody(c)
	if err != nil {
		return err
	}
	exports, err := s.opts.Plugins.Validate(c.UserContext(), wasm)
	switch {
	case errors.Is(err, ErrPluginNotWasm):
		return errorf(fiber.StatusBadRequest, CodePluginNotWasm, "the body is not a WebAssembly module (send the .wasm bytes as application/wasm)")
	case errors.Is(err, ErrPluginNoExport):
		return errorf(fiber.StatusUnprocessableEntity, CodePluginMissingExport, "the module exports none of on_message, on_response, on_send")
	case errors.Is(err, ErrPluginInvalid):
		return errorf(fiber.StatusUnprocessableEntity, CodePluginInvalid, "the module does not compile within the plug-in sandbox")
	case err != nil:
		return internal(err)
	}
	p, created, err := s.opts.Store.SavePlugin(c.UserContext(), account(c).ID, name, wasm, exports, s.opts.MaxPluginsPerAccount)
	switch {
	case errors.Is(err, persistence.ErrPluginQuota):
		return &Error{Status: fiber.StatusTooManyRequests, Code: CodeQuotaExceeded, RetryAfter: 60,
			Message: "the account holds as many plug-ins as its quota allows; delete one first"}
	case errors.Is(err, persistence.ErrPluginExport):
		return errorf(fiber.StatusUnprocessableEntity, CodePluginMissingExport, "the new version lacks an extension point the plug-in is bound to")
	case err != nil:
		return storeError(err, "plug-in")
	}
	c.Set(fiber.HeaderETag, `"`+p.SHA256+`"`)
	status := fiber.StatusOK
	if created {
		status = fiber.StatusCreated
	}
	return c.Status(status).JSON(fiber.Map{"ok": true, "plugin": viewPlugin(p)})
}

// listPlugins lists the caller's plug-ins.
func (s *Server) listPlugins(c *fiber.Ctx) error {
	ps, err := s.opts.Store.ListPlugins(c.UserContext(), account(c).ID)
	if err != nil {
		return internal(err)
	}
	out := make([]fiber.Map, 0, len(ps))
	for _, p := range ps {
		out = append(out, viewPlugin(p))
	}
	return c.JSON(fiber.Map{"ok": true, "plugins": out})
}

// deletePlugin deletes one of the caller's plug-ins that nothing is bound
// to.
func (s *Server) deletePlugin(c *fiber.Ctx) error {
	err := s.opts.Store.DeletePlugin(c.UserContext(), account(c).ID, c.Params("id"))
	if errors.Is(err, persistence.ErrPluginBound) {
		return errorf(fiber.StatusConflict, CodePluginBound, "the plug-in is bound to a bridge; unbind it first")
	}
	if err != nil {
		return storeError(err, "plug-in")
	}
	return c.JSON(fiber.Map{"ok": true})
}

// pointParam reads the extension point of the path.
func pointParam(c *fiber.Ctx) (string, error) {
	switch p := c.Params("point"); p {
	case "on_message", "on_response", "on_send":
		return p, nil
	}
	return "", notFound("extension point")
}

// bindPlugin binds one of the caller's plug-ins to an extension point of
// one of its bridges.
func (s *Server) bindPlugin(c *fiber.Ctx) error {
	point, err := pointParam(c)
	if err != nil {
		return err
	}
	var req bindPluginRequest
	if err := decodeBody(c, &req); err != nil {
		return err
	}
	if req.Plugin == "" {
		return invalidField("plugin", "is required")
	}
	if req.OnError == "" {
		req.OnError = "forward"
	}
	if req.OnError != "forward" && req.OnError != "drop" && req.OnError != "dead_letter" {
		return invalidField("onError", "must be forward, drop or dead_letter")
	}
	if len(req.Config) > maxPluginConfigKeys {
		return invalidField("config", "has too many keys")
	}
	for k, v := range req.Config {
		if k == "" || len(k) > maxPluginConfigKey || len(v) > maxPluginConfigValue || !utf8.ValidString(k) || !utf8.ValidString(v) {
			return invalidField("config", "keys must be 1 to 64 bytes and values at most 4096 bytes of UTF-8")
		}
	}
	b, err := s.opts.Store.BindPlugin(c.UserContext(), account(c).ID, c.Params("id"), point, req.Plugin, req.Config, req.OnError)
	if errors.Is(err, persistence.ErrPluginExport) {
		return errorf(fiber.StatusUnprocessableEntity, CodePluginMissingExport, "the plug-in does not export %s", point)
	}
	if err != nil {
		return storeError(err, "bridge or plug-in")
	}
	return c.JSON(fiber.Map{"ok": true, "binding": fiber.Map{"bridge": b.BridgeID, "extensionPoint": b.Point,
		"plugin": b.PluginID, "sha256": b.SHA256, "config": b.Config, "onError": b.OnError}})
}

// unbindPlugin removes the plug-in bound to an extension point.
func (s *Server) unbindPlugin(c *fiber.Ctx) error {
	point, err := pointParam(c)
	if err != nil {
		return err
	}
	if err := s.opts.Store.UnbindPlugin(c.UserContext(), account(c).ID, c.Params("id"), point); err != nil {
		return storeError(err, "binding")
	}
	return c.JSON(fiber.Map{"ok": true})
}
