package http

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/contrib/websocket"
	"github.com/gofiber/fiber/v2"

	"github.com/xmtpbridge/bridge/persistence"
)

// The live stream endpoint, GET /v1/bridges/:id/live: a WebSocket that
// speaks JSON-RPC 2.0 (docs/live.md). Every check (API key, bridge of the
// caller's account, live delivery, cursor and window) is answered as a
// plain HTTP error before the upgrade. A socket costs two goroutines: the
// handler's, which reads frames, and a pusher, which sends messages as the
// session wakes, pings, and closes a consumer that is too slow.

// LiveStream is one consumer session of a bridge's live stream;
// actors.LiveSession implements it.
type LiveStream interface {
	Wake() <-chan struct{}
	Next(ctx context.Context) ([]persistence.LiveMessage, error)
	Ack(ctx context.Context, messageID string) error
	Reply(ctx context.Context, messageID, text string) (string, error)
	Inflight() (int, time.Time)
	Window() int
	// Revoked is closed when the API key the socket was opened with is
	// revoked, on any node.
	Revoked() <-chan struct{}
	Close()
}

// LiveHub opens live sessions on this node.
type LiveHub interface {
	// OpenLive starts a session of bridgeID, for a consumer that
	// authenticated with the API key keyID, after the cursor after with at
	// most window messages unacknowledged (0: the default).
	OpenLive(bridgeID, keyID string, after int64, window int) LiveStream
	// LiveClosed counts a socket the server closed, by reason.
	LiveClosed(reason string)
}

// LiveOptions tune the live sockets; zero values take the defaults.
type LiveOptions struct {
	// PingInterval is how often the server pings; a consumer that sends
	// nothing, not even a pong, for two intervals is closed. 20s.
	PingInterval time.Duration
	// WriteTimeout bounds one frame's write; a consumer that does not read
	// is closed after it. 10s.
	WriteTimeout time.Duration
	// AckTimeout is how long a full window may wait for an
	// acknowledgement before the consumer is closed as too slow. 60s.
	AckTimeout time.Duration
	// MaxFrame is the largest frame a consumer may send; a larger one
	// closes the socket with 1009. 64 KiB.
	MaxFrame int64
	// MaxWindow is the largest window a consumer may ask for. 1000.
	MaxWindow int
}

func (o LiveOptions) withDefaults() LiveOptions {
	o.PingInterval = orDefaultDuration(o.PingInterval, 20*time.Second)
	o.WriteTimeout = orDefaultDuration(o.WriteTimeout, 10*time.Second)
	o.AckTimeout = orDefaultDuration(o.AckTimeout, 60*time.Second)
	if o.MaxFrame <= 0 {
		o.MaxFrame = 64 << 10
	}
	if o.MaxWindow <= 0 {
		o.MaxWindow = 1000
	}
	return o
}

func orDefaultDuration(v, d time.Duration) time.Duration {
	if v <= 0 {
		return d
	}
	return v
}

// Close codes of the live socket besides the standard ones.
const (
	// CloseSlowConsumer closes a consumer whose window stayed full past
	// the ack timeout, or that stopped reading.
	CloseSlowConsumer = 4001
	// CloseKeyRevoked closes the sockets opened with an API key that was
	// revoked.
	CloseKeyRevoked = 4003
)

// liveProtocol is the WebSocket subprotocol the server speaks; a browser
// offers it next to "bearer.<api key>".
const liveProtocol = "jsonrpc"

// liveBearerPrefix marks the API key among the offered subprotocols.
const liveBearerPrefix = "bearer."

// liveAuth lets a browser, which cannot set Authorization on a WebSocket,
// carry its API key as the subprotocol "bearer.<api key>".
func (s *Server) liveAuth(c *fiber.Ctx) error {
	if c.Get(fiber.HeaderAuthorization) == "" {
		for _, p := range strings.Split(c.Get(fiber.HeaderSecWebSocketProtocol), ",") {
			if key, ok := strings.CutPrefix(strings.TrimSpace(p), liveBearerPrefix); ok && key != "" {
				c.Request().Header.Set(fiber.HeaderAuthorization, "Bearer "+key)
				break
			}
		}
	}
	return c.Next()
}

// liveConnect checks the request and upgrades it to a live socket.
func (s *Server) liveConnect(c *fiber.Ctx) error {
	if s.opts.Live == nil {
		return errorf(fiber.StatusServiceUnavailable, CodeUnavailable, "live consumers are not served by this node")
	}
	acct := account(c)
	b, err := s.opts.Store.GetBridge(c.UserContext(), acct.ID, c.Params("id"))
	if err != nil {
		return storeError(err, "bridge")
	}
	if !b.Delivery.Live() {
		return errorf(fiber.StatusConflict, CodeLiveDisabled, `the bridge delivers to its webhook only: set its delivery to "live" or "both"`)
	}
	var after int64
	if raw := c.Query("after"); raw != "" {
		after, err = strconv.ParseInt(raw, 10, 64)
		if err != nil || after < 0 {
			return errorf(fiber.StatusBadRequest, CodeInvalidCursor, "after must be the cursor of a live message")
		}
	}
	opts := s.opts.LiveOptions.withDefaults()
	window := 0
	if raw := c.Query("window"); raw != "" {
		window, err = strconv.Atoi(raw)
		if err != nil || window < 1 || window > opts.MaxWindow {
			return invalidField("window", "must be an integer between 1 and "+strconv.Itoa(opts.MaxWindow))
		}
	}
	if !websocket.IsWebSocketUpgrade(c) {
		return errorf(fiber.StatusUpgradeRequired, CodeUpgradeRequired, "this endpoint is a WebSocket: send an upgrade request")
	}
	sock := &liveSocket{s: s, opts: opts, bridgeID: b.ID, accountID: acct.ID, keyID: apiKeyID(c), log: s.log.With("bridge", b.ID)}
	return websocket.New(func(conn *websocket.Conn) {
		sock.conn = conn
		sock.serve(after, window)
	}, websocket.Config{
		Subprotocols:   []string{liveProtocol},
		ReadBufferSize: 4096, WriteBufferSize: 4096,
		RecoverHandler: func(*websocket.Conn) {
			if p := recover(); p != nil {
				s.log.Error("live socket panicked", "bridge", b.ID, "panic", p)
			}
		},
	})(c)
}

// liveMessageParams are the params of a `message` notification: the JSON
// webhook body with the stream's cursor.
func liveMessageParams(m persistence.LiveMessage) (json.RawMessage, error) {
	var body map[string]json.RawMessage
	if err := json.Unmarshal(m.Body, &body); err != nil {
		return nil, err
	}
	if body == nil {
		body = map[string]json.RawMessage{}
	}
	id, _ := json.Marshal(m.MessageID)
	cursor, _ := json.Marshal(strconv.FormatInt(m.ID, 10))
	body["id"], body["cursor"] = id, cursor
	return json.Marshal(body)
}

// parseDelivery reads the delivery field of a bridge request; absent is
// the webhook.
func parseDelivery(raw *string) (persistence.DeliveryMode, error) {
	if raw == nil {
		return persistence.DeliveryWebhook, nil
	}
	switch m := persistence.DeliveryMode(*raw); m {
	case persistence.DeliveryWebhook, persistence.DeliveryLive, persistence.DeliveryBoth:
		return m, nil
	}
	return "", invalidField("delivery", `must be "webhook", "live" or "both"`)
}

// errLiveRateLimited is a live send over the account's rate.
var errLiveRateLimited = errors.New("too many messages sent per second from this account")
