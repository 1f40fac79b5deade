package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"time"

	"github.com/coder/websocket"
	"github.com/spf13/cobra"

	"github.com/xmtpbridge/bridge/internal/apiclient"
)

// tail is `bridge tail BRIDGE`: a live consumer of the bridge's stream
// (docs/live.md) that prints each event, acknowledges each message and,
// with --reply or --exec, answers it.
//
// An --exec command that fails (exits non-zero, times out, prints nothing
// but an error) is reported and its message is acknowledged without a
// reply: a message that always breaks the command would otherwise come
// back at every reconnect and hold a slot of the window for ever. Empty
// output is no reply either.

// maxReplyBytes is the most of an --exec command's output sent as the
// reply; the API refuses longer messages.
const maxReplyBytes = 32 << 10

// liveFrame is one JSON-RPC 2.0 frame from the server: a notification
// (method and params) or the answer to one of tail's requests.
type liveFrame struct {
	ID     json.RawMessage `json:"id"`
	Method string          `json:"method"`
	Params json.RawMessage `json:"params"`
	Result json.RawMessage `json:"result"`
	Error  *struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// liveMessage is the params of a message notification: the bridge's json
// webhook body and the stream's cursor.
type liveMessage struct {
	ID           string `json:"id"`
	Cursor       string `json:"cursor"`
	Sender       string `json:"sender"`
	ContentType  string `json:"contentType"`
	Content      any    `json:"content"`
	SentAt       string `json:"sentAt"`
	Conversation struct {
		Topic string `json:"topic"`
	} `json:"conversation"`
}

// text is the message's content as text: the string of text content, the
// JSON of anything else.
func (m liveMessage) text() string {
	if s, ok := m.Content.(string); ok {
		return s
	}
	if m.Content == nil {
		return ""
	}
	b, _ := json.Marshal(m.Content)
	return string(b)
}

// liveStatus is the params of a status notification.
type liveStatus struct {
	MessageID string `json:"messageId"`
	Status    string `json:"status"`
	Attempts  int    `json:"attempts"`
	LastError string `json:"lastError"`
}

// decodeFrame reads one frame of the server.
func decodeFrame(data []byte) (liveFrame, error) {
	var f liveFrame
	if err := json.Unmarshal(data, &f); err != nil {
		return f, fmt.Errorf("decode live frame: %w", err)
	}
	return f, nil
}

type tailFlags struct {
	reply       string
	exec        string
	execTimeout time.Duration
	window      int
}

func tailCommands(inv *invocation) []*cobra.Command {
	var f tailFlags
	c := clientCommand(inv, &cobra.Command{
		Use:   "tail BRIDGE [--reply TEXT | --exec CMD]",
		Short: "Watch a bridge's messages live; answer each with --reply or a shell command (--exec)",
		Long: "Connects to the bridge's live stream (a WebSocket) and prints one line per event: the time, the\n" +
			"sender, the text and what became of it; --json prints NDJSON, one object per event.\n\n" +
			"The bridge's delivery must be live or both (`bridge bridges update BRIDGE --delivery live`): in\n" +
			"webhook mode there is no live stream. tail is a consumer: it acknowledges every message it\n" +
			"prints, and a message is given to one consumer of the bridge at a time.\n\n" +
			"--reply TEXT answers every message with TEXT. --exec CMD runs CMD with sh -c for each message,\n" +
			"the message text on its stdin; its stdout is the reply (empty output sends none). A command\n" +
			"that fails or outlasts --exec-timeout is reported, and its message is acknowledged without a\n" +
			"reply. Ctrl-C closes the stream and exits 0.",
		Example: "  bridge tail echo\n  bridge tail echo --exec 'tr a-z A-Z'   # your first bot in one line\n" +
			"  bridge tail echo --json | jq .",
		Args: func(c *cobra.Command, args []string) error {
			if c.Flags().Changed("reply") && c.Flags().Changed("exec") {
				return usagef("give --reply or --exec, not both")
			}
			if c.Flags().Changed("reply") && strings.TrimSpace(f.reply) == "" {
				return usagef("--reply needs a text")
			}
			if c.Flags().Changed("exec") && strings.TrimSpace(f.exec) == "" {
				return usagef("--exec needs a command")
			}
			if f.execTimeout <= 0 {
				return usagef("--exec-timeout must be above 0")
			}
			if f.window < 0 || f.window > 1000 {
				return usagef("--window must be 1 to 1000")
			}
			return cobra.ExactArgs(1)(c, args)
		},
	}, func(s *session, c *cobra.Command, args []string) error {
		return runTail(c.Context(), s, args[0], f)
	})
	c.Flags().StringVar(&f.reply, "reply", "", "answer every message with this text")
	c.Flags().StringVar(&f.exec, "exec", "", "answer every message with the output of this shell command, the message on its stdin")
	c.Flags().DurationVar(&f.execTimeout, "exec-timeout", 30*time.Second, "how long --exec may run for one message")
	c.Flags().IntVar(&f.window, "window", 0, "how many messages may be in flight unacknowledged, 1 to 1000 (default the node's)")
	return []*cobra.Command{c}
}

func runTail(ctx context.Context, s *session, ref string, f tailFlags) error {
	setup, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	id, err := s.resolveBridge(setup, ref)
	if err != nil {
		return s.fail(err)
	}
	b, _, err := s.cl.Bridge(setup, id)
	if err != nil {
		return s.fail(err)
	}
	if b.Delivery == "webhook" || b.Delivery == "" {
		return tailHint(s, b)
	}
	endpoint := "ws" + strings.TrimPrefix(s.cl.BaseURL, "http") + "/v1/bridges/" + id + "/live"
	if f.window > 0 {
		endpoint += fmt.Sprintf("?window=%d", f.window)
	}
	h := http.Header{}
	h.Set("Authorization", "Bearer "+s.cl.Token)
	h.Set("User-Agent", s.cl.UserAgent)
	conn, res, err := websocket.Dial(setup, endpoint, &websocket.DialOptions{HTTPHeader: h})
	if err != nil {
		if res != nil && res.StatusCode >= 400 {
			body, _ := io.ReadAll(io.LimitReader(res.Body, 64<<10))
			ae := apiclient.DecodeError(res.StatusCode, body)
			if ae.Code == "live_disabled" {
				return tailHint(s, b)
			}
			return s.fail(ae)
		}
		if ctx.Err() != nil {
			return nil
		}
		return s.fail(&apiclient.UnreachableError{URL: s.cl.BaseURL, Err: err})
	}
	conn.SetReadLimit(1 << 20)
	t := &tailer{s: s, conn: conn, f: f, bridge: b}
	{
		// On stderr, so --json's stdout stays NDJSON.
		fmt.Fprintf(s.inv.stderr, "tailing %s (%s, delivery %s); Ctrl-C to stop\n", b.Name, b.Address, b.Delivery)
	}
	return t.run(ctx)
}

// tailHint explains why a webhook bridge has no live stream.
func tailHint(s *session, b apiclient.Bridge) error {
	fmt.Fprintf(s.inv.stderr, "%s: bridge %s delivers to its webhook only (delivery %q), so it has no live stream;\n"+
		"  run `bridge bridges update %s --delivery live` (or --delivery both to keep the webhook) first\n",
		s.cmd, b.Name, b.Delivery, b.Name)
	return exitWith(exitFailure)
}

type tailer struct {
	s      *session
	conn   *websocket.Conn
	f      tailFlags
	bridge apiclient.Bridge
	seq    int
	// replies maps the id of a reply request to the message it answers.
	replies map[string]string
}

func (t *tailer) run(ctx context.Context) error {
	t.replies = map[string]string{}
	frames := make(chan []byte, 16)
	readErr := make(chan error, 1)
	// The reader does not stop with ctx: Ctrl-C must close the socket with
	// the close handshake (1000), which needs the reader to take the
	// server's close frame, not an abandoned read that drops the
	// connection.
	readCtx, stopRead := context.WithCancel(context.WithoutCancel(ctx))
	defer stopRead()
	go func() {
		for {
			_, data, err := t.conn.Read(readCtx)
			if err != nil {
				readErr <- err
				close(frames)
				return
			}
			select {
			case frames <- data:
			case <-readCtx.Done():
				return
			}
		}
	}()
	for {
		select {
		case <-ctx.Done():
			t.conn.Close(websocket.StatusNormalClosure, "bridge tail stopped")
			return nil
		case data, ok := <-frames:
			if !ok {
				err := <-readErr
				if ctx.Err() != nil {
					t.conn.Close(websocket.StatusNormalClosure, "bridge tail stopped")
					return nil
				}
				fmt.Fprintf(t.s.inv.stderr, "%s: the live stream closed: %s\n", t.s.cmd, closeReason(err))
				return exitWith(exitFailure)
			}
			if err := t.handle(ctx, data); err != nil {
				if ctx.Err() != nil {
					t.conn.Close(websocket.StatusNormalClosure, "bridge tail stopped")
					return nil
				}
				fmt.Fprintf(t.s.inv.stderr, "%s: %v\n", t.s.cmd, err)
				t.conn.Close(websocket.StatusInternalError, "client error")
				return exitWith(exitFailure)
			}
		}
	}
}

func closeReason(err error) string {
	if st := websocket.CloseStatus(err); st != -1 {
		var ce websocket.CloseError
		if errors.As(err, &ce) && ce.Reason != "" {
			return fmt.Sprintf("code %d: %s", st, apiclient.Printable(ce.Reason, 200))
		}
		return fmt.Sprintf("code %d", st)
	}
	return err.Error()
}

// handle acts on one frame of the server.
func (t *tailer) handle(ctx context.Context, data []byte) error {
	fr, err := decodeFrame(data)
	if err != nil {
		return err
	}
	switch fr.Method {
	case "message":
		var m liveMessage
		if err := json.Unmarshal(fr.Params, &m); err != nil || m.ID == "" {
			return fmt.Errorf("decode message notification: not a message")
		}
		return t.message(ctx, m, fr.Params)
	case "status":
		var st liveStatus
		if err := json.Unmarshal(fr.Params, &st); err != nil {
			return fmt.Errorf("decode status notification: %w", err)
		}
		if t.s.out.json {
			return t.event("status", fr.Params)
		}
		line := fmt.Sprintf("%s  reply %s %s", clock(time.Now()), st.MessageID, t.s.out.paint(st.Status, statusColour(st.Status)))
		if st.LastError != "" {
			line += " (" + clip(st.LastError, 80) + ")"
		}
		t.s.out.Line("%s", apiclient.Printable(line, 400))
		return nil
	case "":
		// The answer to a reply request (acks are notifications).
		msg := t.replies[string(fr.ID)]
		delete(t.replies, string(fr.ID))
		if fr.Error != nil {
			fmt.Fprintf(t.s.inv.stderr, "%s: the reply to %s was refused: %d %s\n", t.s.cmd, msg, fr.Error.Code, apiclient.Printable(fr.Error.Message, 200))
		}
		return nil
	}
	return nil
}

// message prints one message, answers it when asked to, and acks it.
func (t *tailer) message(ctx context.Context, m liveMessage, raw json.RawMessage) error {
	text := m.text()
	reply, outcome := "", "acked"
	switch {
	case t.f.reply != "":
		reply = t.f.reply
	case t.f.exec != "":
		out, err := t.runExec(ctx, text)
		switch {
		case err != nil:
			outcome = "exec failed: " + err.Error()
			fmt.Fprintf(t.s.inv.stderr, "%s: --exec for message %s: %v\n", t.s.cmd, m.ID, err)
		case out == "":
			outcome = "acked, no reply (empty output)"
		default:
			reply = out
		}
	}
	if reply != "" {
		t.seq++
		rid := fmt.Sprint(t.seq)
		t.replies[rid] = m.ID
		if err := t.write(ctx, rid, "reply", map[string]string{"id": m.ID, "content": reply}); err != nil {
			return err
		}
		outcome = "replied " + quote(clip(reply, 60))
	}
	if err := t.write(ctx, "", "ack", map[string]string{"id": m.ID}); err != nil {
		return err
	}
	if t.s.out.json {
		var obj map[string]any
		_ = json.Unmarshal(raw, &obj)
		obj["outcome"] = outcome
		if reply != "" {
			obj["reply"] = reply
		}
		b, _ := json.Marshal(obj)
		return t.event("message", b)
	}
	t.s.out.Line("%s", messageLine(m, outcome, time.Now()))
	return nil
}

// messageLine is a message for people: time, sender, text and outcome, on
// one line without control characters, whatever the sender wrote.
func messageLine(m liveMessage, outcome string, now time.Time) string {
	at := now
	if st, err := time.Parse(time.RFC3339Nano, m.SentAt); err == nil {
		at = st
	}
	line := fmt.Sprintf("%s  %s  %s  → %s", clock(at), clip(m.Sender, 42), quote(clip(m.text(), 100)), outcome)
	return apiclient.Printable(line, 400)
}

// event writes one NDJSON line: {"event": name, ...params}.
func (t *tailer) event(name string, params json.RawMessage) error {
	var obj map[string]any
	if err := json.Unmarshal(params, &obj); err != nil || obj == nil {
		obj = map[string]any{}
	}
	obj["event"] = name
	b, err := json.Marshal(obj)
	if err != nil {
		return fmt.Errorf("encode event: %w", err)
	}
	_, err = fmt.Fprintf(t.s.out.w, "%s\n", b)
	return err
}

// write sends a request (id not empty) or a notification.
func (t *tailer) write(ctx context.Context, id, method string, params any) error {
	frame := map[string]any{"jsonrpc": "2.0", "method": method, "params": params}
	if id != "" {
		frame["id"] = json.RawMessage(id)
	}
	b, err := json.Marshal(frame)
	if err != nil {
		return fmt.Errorf("encode %s: %w", method, err)
	}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := t.conn.Write(wctx, websocket.MessageText, b); err != nil {
		return fmt.Errorf("send %s: %w", method, err)
	}
	return nil
}

// runExec runs the --exec command with text on stdin and returns its
// output without the trailing newline.
func (t *tailer) runExec(ctx context.Context, text string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, t.f.execTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "sh", "-c", t.f.exec)
	cmd.Stdin = strings.NewReader(text)
	var out limitedBuffer
	out.max = maxReplyBytes
	cmd.Stdout = &out
	cmd.Stderr = t.s.inv.stderr
	cmd.WaitDelay = time.Second
	if err := cmd.Run(); err != nil {
		if ctx.Err() == context.DeadlineExceeded {
			return "", fmt.Errorf("ran over --exec-timeout %s", t.f.execTimeout)
		}
		return "", err
	}
	if out.over {
		return "", fmt.Errorf("printed over %d bytes", maxReplyBytes)
	}
	return strings.TrimRight(out.String(), "\r\n"), nil
}

// limitedBuffer keeps at most max bytes and notes that there were more.
type limitedBuffer struct {
	bytes.Buffer
	max  int
	over bool
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if room := b.max - b.Len(); len(p) > room {
		b.over = true
		if room > 0 {
			b.Buffer.Write(p[:room])
		}
		return len(p), nil
	}
	return b.Buffer.Write(p)
}

func clock(t time.Time) string { return t.UTC().Format("15:04:05") }

func quote(s string) string { return "\"" + s + "\"" }
