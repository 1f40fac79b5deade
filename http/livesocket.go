package http

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/gofiber/contrib/websocket"

	"github.com/xmtpbridge/bridge/persistence"
	"github.com/xmtpbridge/bridge/xmtp/keys"
)

// liveSendsInFlight bounds the `send` requests of one socket waiting for
// the network, and liveTracked the replies whose outcome it still waits
// to announce.
const (
	liveSendsInFlight = 4
	liveTracked       = 1000
)

// liveSocket is one consumer's socket.
type liveSocket struct {
	s         *Server
	opts      LiveOptions
	conn      *websocket.Conn
	bridgeID  string
	accountID string
	keyID     string
	log       *slog.Logger
	sess      LiveStream

	ctx    context.Context
	cancel context.CancelFunc

	wmu sync.Mutex // one writer at a time

	sends    chan struct{} // semaphore of sends in flight
	sendsRun sync.WaitGroup

	mu      sync.Mutex
	tracked map[string]bool // reply message ids waiting for their outcome
	reason  string          // why the server closed the socket, if it did
	// finished is set when serve returns and the library takes the
	// connection back; closeWith must not touch it then.
	finished bool
}

// liveSockets are the open sockets of a server, closed at shutdown.
type liveSockets struct {
	mu   sync.Mutex
	open map[*liveSocket]struct{}
}

func (ls *liveSockets) add(s *liveSocket) {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	if ls.open == nil {
		ls.open = map[*liveSocket]struct{}{}
	}
	ls.open[s] = struct{}{}
}

func (ls *liveSockets) remove(s *liveSocket) {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	delete(ls.open, s)
}

// closeAll tells every consumer the server goes away.
func (ls *liveSockets) closeAll() {
	ls.mu.Lock()
	open := make([]*liveSocket, 0, len(ls.open))
	for s := range ls.open {
		open = append(open, s)
	}
	ls.mu.Unlock()
	for _, s := range open {
		s.closeWith(websocket.CloseGoingAway, "server shutting down", "shutdown")
	}
}

// serve runs the socket until either side closes it.
func (ls *liveSocket) serve(after int64, window int) {
	ls.ctx, ls.cancel = context.WithCancel(context.Background())
	defer ls.cancel()
	ls.sends = make(chan struct{}, liveSendsInFlight)
	ls.tracked = map[string]bool{}
	ls.sess = ls.s.opts.Live.OpenLive(ls.bridgeID, ls.keyID, after, window)
	defer ls.sess.Close()
	ls.s.live.add(ls)
	defer ls.s.live.remove(ls)
	defer func() {
		ls.mu.Lock()
		ls.finished = true
		ls.mu.Unlock()
	}()
	ls.log.Debug("live consumer connected", "after", after, "window", ls.sess.Window())

	ls.conn.SetReadLimit(ls.opts.MaxFrame)
	alive := func() { _ = ls.conn.SetReadDeadline(time.Now().Add(2 * ls.opts.PingInterval)) }
	alive()
	ls.conn.SetPongHandler(func(string) error { alive(); return nil })

	done := make(chan struct{})
	go func() {
		defer close(done)
		ls.push()
	}()
	defer func() { <-done }()
	// The connection goes back to the library's pool when serve returns:
	// nothing may write to it after.
	defer ls.sendsRun.Wait()
	defer ls.cancel()
	for {
		_, data, err := ls.conn.ReadMessage()
		if err != nil {
			ls.readFailed(err)
			return
		}
		alive()
		ls.handle(data)
	}
}

// readFailed counts why the read side ended.
func (ls *liveSocket) readFailed(err error) {
	ls.mu.Lock()
	closedByUs := ls.reason != ""
	ls.mu.Unlock()
	if closedByUs {
		return
	}
	reason := "gone"
	var ne interface{ Timeout() bool }
	switch {
	case errors.Is(err, websocket.ErrReadLimit):
		reason = "protocol" // the library has sent 1009
	case errors.As(err, &ne) && ne.Timeout():
		reason = "slow" // not even a pong within two pings
		ls.closeWith(CloseSlowConsumer, "slow consumer: no frame or pong in time", reason)
		return
	}
	ls.s.opts.Live.LiveClosed(reason)
	ls.log.Debug("live consumer left", "reason", reason)
}

// closeWith sends a close frame, best effort, and ends the socket.
func (ls *liveSocket) closeWith(code int, text, reason string) {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	if ls.reason != "" || ls.finished {
		return
	}
	ls.reason = reason
	// Give the claims back first, so a consumer that reconnects as soon
	// as it reads the close frame gets its messages again, in order.
	ls.sess.Close()
	ls.s.opts.Live.LiveClosed(reason)
	ls.log.Info("live consumer closed", "reason", reason, "code", code)
	_ = ls.conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, text), time.Now().Add(time.Second))
	ls.cancel()
	_ = ls.conn.NetConn().Close()
}

// write sends one frame within the write timeout. A consumer that does not
// take it in time is closed.
func (ls *liveSocket) write(v any) bool {
	data, err := json.Marshal(v)
	if err != nil {
		ls.log.Error("encode live frame", "error", err)
		return true
	}
	ls.wmu.Lock()
	_ = ls.conn.SetWriteDeadline(time.Now().Add(ls.opts.WriteTimeout))
	err = ls.conn.WriteMessage(websocket.TextMessage, data)
	ls.wmu.Unlock()
	if err != nil {
		ls.closeWith(CloseSlowConsumer, "slow consumer: a frame was not read in time", "slow")
		return false
	}
	return true
}

// push sends messages as the session wakes, pings, checks that a full
// window does not wait too long and announces the outcome of replies.
func (ls *liveSocket) push() {
	ping := time.NewTicker(ls.opts.PingInterval)
	defer ping.Stop()
	check := time.NewTicker(min(time.Second, ls.opts.AckTimeout/2))
	defer check.Stop()
	for {
		select {
		case <-ls.ctx.Done():
			return
		case <-ls.sess.Revoked():
			ls.closeWith(CloseKeyRevoked, "the API key of this socket was revoked", "revoked")
			return
		case <-ls.sess.Wake():
			msgs, err := ls.sess.Next(ls.ctx)
			if err != nil {
				if ls.ctx.Err() == nil {
					ls.log.Warn("claim live messages", "error", err)
				}
				continue
			}
			for _, m := range msgs {
				params, err := liveMessageParams(m)
				if err != nil {
					ls.log.Error("decode live message", "message", m.MessageID, "error", err)
					continue
				}
				if !ls.write(rpcNotify("message", params)) {
					return
				}
			}
		case <-ping.C:
			ls.wmu.Lock()
			err := ls.conn.WriteControl(websocket.PingMessage, nil, time.Now().Add(ls.opts.WriteTimeout))
			ls.wmu.Unlock()
			if err != nil {
				ls.closeWith(CloseSlowConsumer, "slow consumer: a ping was not read in time", "slow")
				return
			}
		case <-check.C:
			n, oldest := ls.sess.Inflight()
			if n >= ls.sess.Window() && time.Since(oldest) > ls.opts.AckTimeout {
				ls.closeWith(CloseSlowConsumer, "slow consumer: the window stayed full past the ack timeout", "slow")
				return
			}
			ls.announceReplies()
		}
	}
}

// announceReplies sends a `status` notification for each tracked reply
// that is sent or failed.
func (ls *liveSocket) announceReplies() {
	ls.mu.Lock()
	ids := make([]string, 0, len(ls.tracked))
	for id := range ls.tracked {
		ids = append(ids, id)
	}
	ls.mu.Unlock()
	for _, id := range ids {
		m, err := ls.s.opts.Store.SentMessage(ls.ctx, ls.accountID, ls.bridgeID, id)
		if err != nil || m.Status == persistence.SendQueued {
			continue
		}
		ls.mu.Lock()
		delete(ls.tracked, id)
		ls.mu.Unlock()
		if !ls.write(rpcNotify("status", liveStatus(m))) {
			return
		}
	}
}

func liveStatus(m persistence.SentMessage) map[string]any {
	return map[string]any{"messageId": m.MessageID, "status": string(m.Status), "attempts": m.Attempts, "lastError": m.LastError}
}

// handle answers one frame.
func (ls *liveSocket) handle(data []byte) {
	req, rerr := decodeRPC(data)
	if rerr != nil {
		ls.write(rpcFailure(req.ID, rerr))
		return
	}
	answer := func(result any, e *rpcError) {
		if req.ID == nil {
			return // a notification gets no answer
		}
		if e != nil {
			ls.write(rpcFailure(req.ID, e))
			return
		}
		ls.write(rpcResult(req.ID, result))
	}
	switch req.Method {
	case "ack":
		var p struct {
			ID string `json:"id"`
		}
		if e := decodeParams(req.Params, &p); e != nil {
			answer(nil, e)
			return
		}
		err := ls.sess.Ack(ls.ctx, p.ID)
		answer(map[string]any{"ok": true}, ls.liveError(err))
	case "reply":
		var p struct {
			ID      string `json:"id"`
			Content string `json:"content"`
		}
		if e := decodeParams(req.Params, &p); e != nil {
			answer(nil, e)
			return
		}
		if err := checkContent("content", p.Content); err != nil {
			answer(nil, &rpcError{Code: rpcInvalidParams, Message: "invalid params: " + err.Error()})
			return
		}
		id, err := ls.sess.Reply(ls.ctx, p.ID, p.Content)
		if errors.Is(err, persistence.ErrAlreadyReplied) {
			answer(nil, &rpcError{Code: rpcAlreadyReplied, Message: "the message already has its reply", Data: map[string]string{"messageId": id}})
			return
		}
		if err != nil {
			answer(nil, ls.liveError(err))
			return
		}
		ls.track(id)
		answer(map[string]any{"messageId": id, "status": string(persistence.SendQueued)}, nil)
	case "send":
		var p struct {
			To      string `json:"to"`
			Content string `json:"content"`
		}
		if e := decodeParams(req.Params, &p); e != nil {
			answer(nil, e)
			return
		}
		if !keys.IsAddress(p.To) {
			answer(nil, &rpcError{Code: rpcInvalidParams, Message: "invalid params: to must be a 0x address of 40 hex digits"})
			return
		}
		if err := checkContent("content", p.Content); err != nil {
			answer(nil, &rpcError{Code: rpcInvalidParams, Message: "invalid params: " + err.Error()})
			return
		}
		select {
		case ls.sends <- struct{}{}:
		default:
			answer(nil, &rpcError{Code: rpcTooManyInFlight, Message: "too many sends in flight on this socket; wait for an answer"})
			return
		}
		ls.sendsRun.Add(1)
		go func() {
			defer ls.sendsRun.Done()
			defer func() { <-ls.sends }()
			id, err := ls.send(p.To, p.Content)
			if err != nil {
				answer(nil, ls.liveError(err))
				return
			}
			answer(map[string]any{"messageId": id}, nil)
			ls.write(rpcNotify("status", map[string]any{"messageId": id, "status": string(persistence.SendSent), "attempts": 1, "lastError": ""}))
		}()
	default:
		answer(nil, &rpcError{Code: rpcMethodNotFound, Message: "method not found: the methods are ack, reply and send"})
	}
}

// track remembers a reply whose outcome the socket will announce.
func (ls *liveSocket) track(id string) {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	if len(ls.tracked) < liveTracked {
		ls.tracked[id] = true
	}
}

// send sends through the reverse proxy as the bridge, within the
// account's send rate, and records it as a live send.
func (ls *liveSocket) send(to, text string) (string, error) {
	s := ls.s
	if s.opts.Sender == nil {
		return "", errors.New("sending is not available on this node")
	}
	ok, err := s.opts.Store.TakeSend(ls.ctx, ls.accountID, s.sendRate())
	if err != nil {
		return "", err
	}
	if !ok {
		return "", errLiveRateLimited
	}
	id, err := s.opts.Sender.Send(ls.ctx, ls.bridgeID, to, text)
	if err != nil {
		return "", err
	}
	if err := s.opts.Store.MarkSendSource(ls.ctx, ls.bridgeID, id, persistence.SendLive); err != nil {
		ls.log.Warn("mark live send", "message", id, "error", err)
	}
	return id, nil
}

// liveError turns an error into its JSON-RPC answer; nil stays nil.
func (ls *liveSocket) liveError(err error) *rpcError {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, persistence.ErrUnknownLiveMessage):
		return &rpcError{Code: rpcUnknownMessage, Message: "unknown message id: not a message of this bridge's live stream sent to this consumer"}
	case errors.Is(err, errLiveRateLimited):
		return &rpcError{Code: rpcRateLimited, Message: errLiveRateLimited.Error()}
	case errors.Is(err, ErrRecipientNotOnNetwork):
		return &rpcError{Code: rpcSendFailed, Message: "the recipient is not on the XMTP network"}
	case errors.Is(err, ErrSendUnavailable), errors.Is(err, ErrSendOutcomeUnknown):
		return &rpcError{Code: rpcSendFailed, Message: "the bridge identity is not available now; try again"}
	}
	if ls.ctx.Err() == nil {
		ls.log.Warn("live request", "error", err)
	}
	return &rpcError{Code: rpcInternalError, Message: "internal error"}
}
