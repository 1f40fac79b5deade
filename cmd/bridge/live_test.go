package main

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/xmtpbridge/bridge/actors/plugin/plugintest"
	"github.com/xmtpbridge/bridge/internal/apiclient"
	"github.com/xmtpbridge/bridge/internal/testkit"
)

// jsEvent is one JSON line of an xmtp-js script of xmtp/interop/js.
type jsEvent struct {
	Event   string `json:"event"`
	Address string `json:"address"`
	ID      string `json:"id"`
	Sender  string `json:"sender"`
	Text    string `json:"text"`
}

// runJS runs an xmtp-js script and returns its events.
func runJS(t *testing.T, script string, args ...string) (<-chan jsEvent, *testkit.Buffer) {
	t.Helper()
	dir, _ := filepath.Abs(filepath.Join("..", "..", "xmtp", "interop", "js"))
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "@xmtp", "xmtp-js", "package.json")); err != nil {
		t.Fatalf("xmtp-js is not installed: run scripts/ensure-node-deps.sh: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	cmd := exec.CommandContext(ctx, "node", append([]string{filepath.Join(dir, script)}, args...)...)
	cmd.Dir = dir
	stderr := &testkit.Buffer{}
	cmd.Stderr = stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start node %s: %v", script, err)
	}
	events := make(chan jsEvent, 16)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			var e jsEvent
			if json.Unmarshal(sc.Bytes(), &e) == nil {
				events <- e
			}
		}
		_ = cmd.Wait()
		close(events)
	}()
	return events, stderr
}

// nextJS waits for the script's next event, which must be want.
func nextJS(t *testing.T, events <-chan jsEvent, stderr *testkit.Buffer, want string) jsEvent {
	t.Helper()
	select {
	case e, ok := <-events:
		if !ok {
			t.Fatalf("the xmtp-js script ended before %q:\n%s", want, stderr.String())
		}
		if e.Event != want {
			t.Fatalf("xmtp-js event %+v, want %q", e, want)
		}
		return e
	case <-time.After(90 * time.Second):
		t.Fatalf("no %q from the xmtp-js script:\n%s", want, stderr.String())
	}
	return jsEvent{}
}

// background is a command running until its context is cancelled, as a
// person presses Ctrl-C.
type background struct {
	stdout, stderr testkit.Buffer
	cancel         context.CancelFunc
	done           chan int
}

func (c *cli) start(args ...string) *background {
	b := &background{done: make(chan int, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	b.cancel = cancel
	inv := &invocation{
		lookup: func(k string) (string, bool) { v, ok := c.vars[k]; return v, ok },
		stdin:  strings.NewReader(""), stdout: &b.stdout, stderr: &b.stderr,
		terminal: func(any) bool { return false },
	}
	go func() { b.done <- run(ctx, args, inv) }()
	c.t.Cleanup(func() {
		cancel()
		<-b.done
	})
	return b
}

// stop cancels the command and returns its exit code and what it printed.
func (b *background) stop(c *cli) (int, string, string) {
	b.cancel()
	code := <-b.done
	b.done <- code
	c.mu.Lock()
	c.all.WriteString(b.stdout.String() + b.stderr.String())
	c.mu.Unlock()
	return code, b.stdout.String(), b.stderr.String()
}

// TestLiveCommandsAgainstARunningNode runs tail (answering xmtp-js senders
// with --exec and --reply, for people and as NDJSON), send --wait,
// messages, subscribers, broadcast --wait and plugins against a real dev
// node.
func TestLiveCommandsAgainstARunningNode(t *testing.T) {
	api, xmtpHTTP := startDevNodeXMTP(t)
	c := newCLI(t, map[string]string{envAPIURL: api})
	if r := c.runWith(runOpts{stdin: cliSignupKey}, "login", "--signup", "--name", "live test"); r.code != 0 {
		t.Fatalf("login --signup: exit %d\n%s", r.code, r.stderr)
	}
	key := ""
	defer func() {
		if key != "" && strings.Contains(c.all.String(), key) {
			t.Error("a command printed the API key")
		}
	}()
	var echo, hooked struct {
		Bridge apiclient.Bridge `json:"bridge"`
	}
	// echo as the README's quick start makes it, then turned live as its
	// "first bot in one line" says.
	c.ok("bridges", "create", "echo", "--url", api+"/canary", "--body-format", "relaycc", "--reply-mode", "reply")
	mustContain(t, "bridges update --delivery live", c.ok("bridges", "update", "echo", "--delivery", "live"), "delivery:", "live")
	c.json(&echo, "bridges", "get", "echo")
	c.json(&hooked, "bridges", "create", "hooked", "--url", "http://127.0.0.1:9/unused", "--retry", "final4xx")
	if echo.Bridge.Delivery != "live" || hooked.Bridge.Delivery != "webhook" {
		t.Fatalf("delivery of the bridges: %q, %q", echo.Bridge.Delivery, hooked.Bridge.Delivery)
	}
	mustContain(t, "bridges get echo", c.ok("bridges", "get", "echo"), "delivery:", "live")
	if r := c.run("bridges", "create", "x", "--url", "http://127.0.0.1:9/", "--delivery", "carrier-pigeon"); r.code != 2 {
		t.Fatalf("bridges create --delivery carrier-pigeon: exit %d", r.code)
	}

	// tail of a webhook bridge says how to turn the live stream on.
	mustContain(t, "tail of a webhook bridge", c.fails("tail", "hooked"), "delivers to its webhook only",
		"bridge bridges update hooked --delivery live")

	// The one-line bot: tail --exec answers an xmtp-js sender.
	bot := c.start("tail", "echo", "--exec", "tr a-z A-Z")
	waitUntil(t, "tail to connect", func() bool { return strings.Contains(bot.stderr.String(), "tailing echo") })
	events, jsErr := runJS(t, "quickstart.cjs", echo.Bridge.Address, "hello tail", xmtpHTTP)
	me := nextJS(t, events, jsErr, "ready")
	nextJS(t, events, jsErr, "sent")
	if reply := nextJS(t, events, jsErr, "reply"); reply.Text != "HELLO TAIL" || !strings.EqualFold(reply.Sender, echo.Bridge.Address) {
		t.Fatalf("xmtp-js got %+v, want \"HELLO TAIL\" from the bridge", reply)
	}
	waitUntil(t, "the reply's status in tail", func() bool { return strings.Contains(bot.stdout.String(), " sent") })
	code, out, stderr := bot.stop(c)
	if code != 0 {
		t.Fatalf("tail after Ctrl-C: exit %d\n%s%s", code, out, stderr)
	}
	mustContain(t, "tail --exec", out, me.Address, `"hello tail"`, `replied "HELLO TAIL"`, "reply ", "sent")

	// --json: NDJSON, one object per event; --reply answers with a text.
	js := c.start("tail", "echo", "--json", "--reply", "pong")
	waitUntil(t, "tail --json to connect", func() bool { return strings.Contains(js.stderr.String(), "tailing echo") })
	events, jsErr = runJS(t, "quickstart.cjs", echo.Bridge.Address, "ping json", xmtpHTTP)
	me2 := nextJS(t, events, jsErr, "ready")
	sent := nextJS(t, events, jsErr, "sent")
	if reply := nextJS(t, events, jsErr, "reply"); reply.Text != "pong" {
		t.Fatalf("xmtp-js got %+v, want pong", reply)
	}
	waitUntil(t, "the status event", func() bool { return strings.Contains(js.stdout.String(), `"event":"status"`) })
	code, out, _ = js.stop(c)
	if code != 0 {
		t.Fatalf("tail --json after Ctrl-C: exit %d", code)
	}
	var kinds []string
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var ev map[string]any
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatalf("tail --json line %q: %v", line, err)
		}
		kinds = append(kinds, ev["event"].(string))
		switch ev["event"] {
		case "message":
			if ev["id"] != sent.ID || ev["content"] != "ping json" || !strings.EqualFold(ev["sender"].(string), me2.Address) ||
				ev["reply"] != "pong" || ev["cursor"] == "" {
				t.Errorf("message event %v", ev)
			}
		case "status":
			if ev["status"] != "sent" || ev["messageId"] == "" {
				t.Errorf("status event %v", ev)
			}
		}
	}
	if strings.Join(kinds, ",") != "message,status" {
		t.Fatalf("tail --json events %v, want message,status:\n%s", kinds, out)
	}

	// A failing --exec command is reported, and the message is acked
	// without a reply.
	failing := c.start("tail", "echo", "--exec", "echo broken >&2; exit 3")
	waitUntil(t, "tail --exec to connect", func() bool { return strings.Contains(failing.stderr.String(), "tailing echo") })
	events, jsErr = runJS(t, "quickstart.cjs", echo.Bridge.Address, "break it", xmtpHTTP)
	nextJS(t, events, jsErr, "ready")
	nextJS(t, events, jsErr, "sent")
	waitUntil(t, "the failure in tail", func() bool { return strings.Contains(failing.stdout.String(), "exec failed: exit status 3") })
	if code, out, stderr := failing.stop(c); code != 0 || !strings.Contains(out, `"break it"`) || !strings.Contains(stderr, "broken") ||
		strings.Contains(out, "replied") {
		t.Fatalf("tail with a failing --exec: exit %d\n%s%s", code, out, stderr)
	}

	// send --wait: the status once sent; messages lists and shows it.
	var st apiclient.SentMessage
	c.json(&st, "send", "echo", me.Address, "are you there", "--wait")
	if st.Status != "sent" || st.MessageID == "" || !strings.EqualFold(st.To, me.Address) {
		t.Fatalf("send --wait --json: %+v", st)
	}
	mustContain(t, "send --wait", c.ok("send", "echo", me2.Address, "second", "--wait"), "status:", "sent", "attempts:")
	var msgs []apiclient.SentMessage
	if c.json(&msgs, "messages", "echo"); len(msgs) < 4 {
		t.Fatalf("messages --json: %d messages, want the two replies and the two sends: %+v", len(msgs), msgs)
	}
	mustContain(t, "messages", c.ok("messages", "echo"), "MESSAGE", "SOURCE", "STATUS", st.MessageID, "sent", "live")
	mustContain(t, "messages ID", c.ok("messages", "echo", st.MessageID), "message:", st.MessageID, "status:", "sent")
	mustContain(t, "messages of an unknown id", c.fails("messages", "echo", "nosuch"), "not_found (HTTP 404)")

	// subscribers: an xmtp-js user sends /subscribe and gets the
	// confirmation; broadcast --wait reaches it with a progress bar.
	events, jsErr = runJS(t, "quickstart.cjs", hooked.Bridge.Address, "/subscribe", xmtpHTTP)
	fan := nextJS(t, events, jsErr, "ready")
	nextJS(t, events, jsErr, "sent")
	nextJS(t, events, jsErr, "reply")
	var subs []apiclient.Subscriber
	if c.json(&subs, "subscribers", "hooked"); len(subs) != 1 || !strings.EqualFold(subs[0].Address, fan.Address) {
		t.Fatalf("subscribers --json: %+v", subs)
	}
	mustContain(t, "subscribers", c.ok("subscribers", "hooked"), "ADDRESS", "SUBSCRIBED", subs[0].Address)
	r := c.runWith(runOpts{tty: true}, "broadcast", "hooked", "news", "--wait")
	if r.code != 0 || !strings.Contains(r.stdout, "\rbroadcasting [") || !strings.Contains(r.stdout, "1/1") {
		t.Fatalf("broadcast --wait on a terminal: exit %d\n%q\n%s", r.code, r.stdout, r.stderr)
	}
	mustContain(t, "broadcast --wait", r.stdout, "recipients:", "sent:", "1")
	var bc apiclient.Broadcast
	if c.json(&bc, "broadcast", "hooked", "more news", "--wait"); bc.Recipients != 1 || bc.Sent != 1 || bc.Pending != 0 {
		t.Fatalf("broadcast --wait --json: %+v", bc)
	}
	mustContain(t, "subscribers remove", c.ok("subscribers", "remove", "hooked", subs[0].Address), "no longer subscribes")
	if c.json(&subs, "subscribers", "hooked"); len(subs) != 0 {
		t.Fatalf("subscribers after remove: %+v", subs)
	}
	mustContain(t, "subscribers remove of a stranger", c.fails("subscribers", "remove", "hooked", "0x00000000000000000000000000000000000000aa"), "not_found (HTTP 404)")

	// plugins: push, list, bind, unbind, delete.
	wasm := filepath.Join(t.TempDir(), "bot.wasm")
	if err := os.WriteFile(wasm, plugintest.Build(t, plugintest.Bot, ""), 0o600); err != nil {
		t.Fatal(err)
	}
	mustContain(t, "plugins push", c.ok("plugins", "push", wasm), "name:", "bot", "version:", "1", "on_message", "uploaded a new plug-in")
	var pushed struct {
		Plugin  apiclient.Plugin `json:"plugin"`
		Created bool             `json:"created"`
	}
	// The same bytes again are the same version, not a new plug-in.
	if c.json(&pushed, "plugins", "push", wasm, "--name", "bot"); pushed.Created || pushed.Plugin.Version != 1 || pushed.Plugin.Name != "bot" {
		t.Fatalf("plugins push of the same module: %+v", pushed)
	}
	var plugins []apiclient.Plugin
	if c.json(&plugins, "plugins", "list"); len(plugins) != 1 || plugins[0].Name != "bot" {
		t.Fatalf("plugins list --json: %+v", plugins)
	}
	mustContain(t, "plugins list", c.ok("plugins", "list"), "NAME", "VERSION", "bot", "on_message")
	var binding apiclient.Binding
	c.json(&binding, "plugins", "bind", "hooked", "on_message", "bot", "--config", "mode=help", "--on-error", "drop")
	if binding.Plugin != plugins[0].ID || binding.OnError != "drop" || binding.Config["mode"] != "help" || binding.ExtensionPoint != "on_message" {
		t.Fatalf("plugins bind --json: %+v", binding)
	}
	mustContain(t, "plugins delete of a bound plug-in", c.fails("plugins", "delete", "bot"), "plugin_bound (HTTP 409)")
	mustContain(t, "plugins unbind", c.ok("plugins", "unbind", "hooked", "on_message"), "on_message of bridge hooked has no plug-in now")
	mustContain(t, "plugins unbind again", c.fails("plugins", "unbind", "hooked", "on_message"), "not_found (HTTP 404)")
	mustContain(t, "plugins delete", c.ok("plugins", "delete", plugins[0].ID), "plug-in "+plugins[0].ID+" deleted")
	if c.json(&plugins, "plugins", "list"); len(plugins) != 0 {
		t.Fatalf("plugins after delete: %+v", plugins)
	}
	notWasm := filepath.Join(t.TempDir(), "x.wasm")
	os.WriteFile(notWasm, []byte("not wasm"), 0o600)
	mustContain(t, "plugins push of a text file", c.fails("plugins", "push", notWasm), "(HTTP 400)")
	if r := c.run("plugins", "bind", "hooked", "on_everything", "bot"); r.code != 2 {
		t.Fatalf("plugins bind to an unknown point: exit %d", r.code)
	}

	raw, _ := os.ReadFile(filepath.Join(c.vars["XDG_CONFIG_HOME"], "xmtpbridge", "config.json"))
	var saved savedLogin
	_ = json.Unmarshal(raw, &saved)
	key = saved.APIKey
}
