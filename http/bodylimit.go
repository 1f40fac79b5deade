package http

import (
	"bytes"
	"compress/gzip"
	"compress/zlib"
	"errors"
	"io"
	"strings"

	"github.com/andybalholm/brotli"

	"github.com/gofiber/fiber/v2"
)

// Request bodies. The server runs fasthttp with StreamRequestBody and
// BodyLimit = MaxBodyBytes: fasthttp reads at most a small prefix of a
// body before routing, and leaves the rest, of a body over the limit or
// a chunked one, on the connection as a stream. Nothing may call
// Request.Body on such a request, since that reads the whole stream.
//
// bodyLimit, the first middleware, therefore reads every request's body
// itself, bounded by MaxBodyBytes, and answers 413 body_too_large to a
// larger one, except POST /v1/plugins. There uploadBody reads the stream,
// bounded by MaxPluginBytes, once requireAPIKey has let the request in.
// A request whose body is left unread closes its connection, so the
// unread bytes are never parsed as the next request.

// isPluginUpload reports whether the request is the plug-in upload, the
// one route whose body may be larger than MaxBodyBytes.
func isPluginUpload(c *fiber.Ctx) bool {
	return c.Method() == fiber.MethodPost && c.Path() == "/v1/plugins"
}

// bodyDone marks, in the request's locals, that its body stream was read
// to its end.
const bodyDone = "bodylimit.done"

func tooLarge(c *fiber.Ctx, limit int) error {
	c.Response().SetConnectionClose()
	return errorf(fiber.StatusRequestEntityTooLarge, CodeBodyTooLarge, "request body is over the %d-byte limit", limit)
}

// bodyLimit bounds every request body by MaxBodyBytes before anything
// buffers it; the plug-in upload is bounded by uploadBody instead.
func (s *Server) bodyLimit(c *fiber.Ctx) error {
	if isPluginUpload(c) {
		err := c.Next()
		if c.Context().RequestBodyStream() != nil && c.Locals(bodyDone) == nil {
			c.Response().SetConnectionClose()
		}
		return err
	}
	body, err := readBounded(c, s.opts.MaxBodyBytes)
	if err != nil {
		return err
	}
	if body != nil {
		c.Request().SetBody(body)
	}
	if err := decodeBounded(c, s.opts.MaxBodyBytes); err != nil {
		return err
	}
	return c.Next()
}

// decodeBounded undoes a request's Content-Encoding with the same bound
// on the decoded body, so that a small compressed body cannot expand into
// a large one in memory (Fiber's Body decodes without a limit). The
// handlers then see the decoded body and no encoding.
func decodeBounded(c *fiber.Ctx, limit int) error {
	enc := strings.ToLower(strings.TrimSpace(string(c.Request().Header.ContentEncoding())))
	if enc == "" || enc == "identity" {
		return nil
	}
	raw := c.Request().Body()
	var r io.Reader
	switch enc {
	case "gzip", "x-gzip":
		zr, err := gzip.NewReader(bytes.NewReader(raw))
		if err != nil {
			return errorf(fiber.StatusBadRequest, CodeBadRequest, "request body is not valid gzip")
		}
		r = zr
	case "deflate":
		zr, err := zlib.NewReader(bytes.NewReader(raw))
		if err != nil {
			return errorf(fiber.StatusBadRequest, CodeBadRequest, "request body is not valid deflate")
		}
		r = zr
	case "br":
		r = brotli.NewReader(bytes.NewReader(raw))
	default:
		return errorf(fiber.StatusBadRequest, CodeBadRequest, "Content-Encoding %q is not supported; send gzip, deflate, br or none", enc)
	}
	decoded, err := io.ReadAll(io.LimitReader(r, int64(limit)+1))
	if err != nil {
		return errorf(fiber.StatusBadRequest, CodeBadRequest, "request body could not be decoded as %s", enc)
	}
	if len(decoded) > limit {
		return tooLarge(c, limit)
	}
	c.Request().Header.Del(fiber.HeaderContentEncoding)
	c.Request().SetBody(decoded)
	return nil
}

// uploadBody reads the body of a plug-in upload, at most MaxPluginBytes.
func (s *Server) uploadBody(c *fiber.Ctx) ([]byte, error) {
	body, err := readBounded(c, s.opts.MaxPluginBytes)
	if err != nil {
		return nil, err
	}
	if body == nil {
		return c.Request().Body(), nil
	}
	return body, nil
}

// readBounded reads the request's body stream to its end if it holds at
// most limit bytes, and answers 413 without reading further if it holds
// more. It returns nil when the request has no body stream (the body
// was set in full, as app.Test may do).
func readBounded(c *fiber.Ctx, limit int) ([]byte, error) {
	if n := c.Request().Header.ContentLength(); n > limit {
		return nil, tooLarge(c, limit)
	}
	stream := c.Context().RequestBodyStream()
	if stream == nil {
		return nil, nil
	}
	size := c.Request().Header.ContentLength()
	if size < 0 {
		size = 0 // chunked: its size is known only once read
	}
	body := make([]byte, 0, size+1)
	lr := &io.LimitedReader{R: stream, N: int64(limit) + 1}
	for {
		if len(body) == cap(body) {
			body = append(body, 0)[:len(body)]
		}
		n, err := lr.Read(body[len(body):cap(body)])
		body = body[:len(body)+n]
		if len(body) > limit {
			return nil, tooLarge(c, limit)
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			c.Response().SetConnectionClose()
			return nil, errorf(fiber.StatusBadRequest, CodeBadRequest, "request body could not be read")
		}
	}
	c.Locals(bodyDone, true)
	return body, nil
}
