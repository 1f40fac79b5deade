package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xmtpbridge/bridge/internal/apiclient"
	"github.com/xmtpbridge/bridge/internal/testkit"
	"github.com/xmtpbridge/bridge/persistence/pgtest"
	"github.com/xmtpbridge/bridge/system"
	"github.com/xmtpbridge/bridge/system/config"
)

const (
	cliAdminToken = "admin-token-cli-0123456789"
	cliSignupKey  = "signup-key-cli-0123456789"
)

// startDevNode starts a dev-mode node in-process, with the local XMTP node
// and the actor runtime, on real listeners and the real Postgres, and
// returns its API's base URL.
func startDevNode(t *testing.T) string {
	t.Helper()
	api, _ := startDevNodeXMTP(t)
	return api
}

// startDevNodeXMTP is startDevNode that also returns the base URL of the
// local XMTP node's HTTP API, which xmtp-js talks to.
func startDevNodeXMTP(t *testing.T) (string, string) {
	t.Helper()
	url := pgtest.NewDatabase(t, pgtest.Template{Name: "cmd_bridge", Migrate: system.Migrate})
	env := map[string]string{
		config.EnvDatabaseURL:      url,
		config.EnvHTTPAddr:         "127.0.0.1:0",
		config.EnvXMTPNodeGRPCAddr: "127.0.0.1:0",
		config.EnvXMTPNodeHTTPAddr: "127.0.0.1:0",
		config.EnvMasterKey:        testkit.MasterKey,
		config.EnvDataDir:          t.TempDir(), // the plug-ins' compiled modules
		config.EnvAdminToken:       cliAdminToken,
		config.EnvSignupKey:        cliSignupKey,
		config.EnvShutdownTimeout:  "10s",
		config.EnvCanaryInterval:   "0",
		config.EnvNodeID:           "cli-node",
	}
	cfg, err := config.Load(func(k string) (string, bool) { v, ok := env[k]; return v, ok }, config.WithMode(config.ModeDev))
	if err != nil {
		t.Fatalf("load config: %v", err)
	}
	logs := &testkit.Buffer{}
	n, err := system.New(system.Options{Config: cfg, Logger: slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})), Version: "test", Commit: "cli"})
	if err != nil {
		t.Fatalf("new node: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := n.Start(ctx); err != nil {
		t.Fatalf("start node: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() && os.Getenv("CLI_TEST_LOGS") != "" {
			os.WriteFile(os.Getenv("CLI_TEST_LOGS"), []byte(logs.String()), 0o600)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := n.Stop(ctx); err != nil {
			t.Errorf("stop node: %v", err)
		}
	})
	return "http://" + n.HTTPAddr(), "http://" + n.XMTPHTTPAddr()
}

// cli runs client commands in-process, as a person would type them, with
// a config directory of its own. It keeps everything they printed, so the
// test can check that no command ever showed the API key.
type cli struct {
	t    *testing.T
	vars map[string]string
	mu   sync.Mutex
	all  strings.Builder
}

func newCLI(t *testing.T, vars map[string]string) *cli {
	c := &cli{t: t, vars: map[string]string{"XDG_CONFIG_HOME": t.TempDir(), "HOME": t.TempDir()}}
	for k, v := range vars {
		c.vars[k] = v
	}
	return c
}

type runOpts struct {
	stdin string
	tty   bool
	vars  map[string]string
}

func (c *cli) run(args ...string) result { return c.runWith(runOpts{}, args...) }

func (c *cli) runWith(o runOpts, args ...string) result {
	c.t.Helper()
	var stdout, stderr bytes.Buffer
	inv := &invocation{
		lookup: func(k string) (string, bool) {
			if v, ok := o.vars[k]; ok {
				return v, true
			}
			v, ok := c.vars[k]
			return v, ok
		},
		stdin: strings.NewReader(o.stdin), stdout: &stdout, stderr: &stderr,
		terminal: func(w any) bool { return o.tty && w == any(&stdout) },
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	code := run(ctx, args, inv)
	c.mu.Lock()
	c.all.WriteString(stdout.String() + stderr.String())
	c.mu.Unlock()
	return result{code, stdout.String(), stderr.String()}
}

// ok runs args, expects exit 0 and returns stdout.
func (c *cli) ok(args ...string) string {
	c.t.Helper()
	r := c.run(args...)
	if r.code != 0 {
		c.t.Fatalf("bridge %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return r.stdout
}

// json runs args with --json, expects exit 0 and decodes stdout into v.
func (c *cli) json(v any, args ...string) {
	c.t.Helper()
	out := c.ok(append(args, "--json")...)
	if err := json.Unmarshal([]byte(out), v); err != nil {
		c.t.Fatalf("bridge %s --json: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// fails runs args, expects exit 1 and returns stderr.
func (c *cli) fails(args ...string) string {
	c.t.Helper()
	r := c.run(args...)
	if r.code != 1 {
		c.t.Fatalf("bridge %s: exit %d, want 1\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return r.stderr
}

func mustContain(t *testing.T, what, s string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(s, w) {
			t.Errorf("%s lacks %q:\n%s", what, w, s)
		}
	}
}

// hookTarget is the forward endpoint of the test's bridges: /ok answers
// 200, every other path 400, which makes a delivery dead at once.
type hookTarget struct {
	srv  *httptest.Server
	mu   sync.Mutex
	hits map[string]int
}

func newHookTarget(t *testing.T) *hookTarget {
	h := &hookTarget{hits: map[string]int{}}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		h.mu.Lock()
		h.hits[r.URL.Path]++
		h.mu.Unlock()
		if r.URL.Path == "/ok" {
			w.WriteHeader(http.StatusOK)
			return
		}
		http.Error(w, "refused by the test", http.StatusBadRequest)
	}))
	t.Cleanup(h.srv.Close)
	return h
}

func (h *hookTarget) count(path string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.hits[path]
}

// textOf is a delivery's decoded text, or "" when it has none.
func textOf(d apiclient.Delivery) string {
	if d.Text == nil {
		return ""
	}
	return *d.Text
}

// waitUntil polls cond until it holds or 30 seconds pass.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestClientCommandsAgainstARunningNode logs in to a real dev node and runs
// every client command, checking the output for people and the --json
// output, and that no command ever prints the API key.
func TestClientCommandsAgainstARunningNode(t *testing.T) {
	api := startDevNode(t)
	target := newHookTarget(t)
	c := newCLI(t, nil)

	// login --signup: the signup key on stdin, the account's key saved in
	// a file of mode 0600 in a directory of mode 0700, and never shown.
	r := c.runWith(runOpts{stdin: cliSignupKey + "\n"}, "login", "--api", api, "--signup", "--name", "cli test")
	if r.code != 0 {
		t.Fatalf("login --signup: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	mustContain(t, "login --signup", r.stdout, "created account cli test", "logged in to "+api+" as cli test")
	path := filepath.Join(c.vars["XDG_CONFIG_HOME"], "xmtpbridge", "config.json")
	info, err := os.Stat(path)
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("config file: %v, mode %v; want 0600", err, info)
	}
	if dir, err := os.Stat(filepath.Dir(path)); err != nil || dir.Mode().Perm() != 0o700 {
		t.Fatalf("config directory: %v, %v; want mode 0700", err, dir)
	}
	raw, _ := os.ReadFile(path)
	var saved savedLogin
	if err := json.Unmarshal(raw, &saved); err != nil || saved.API != api || !strings.HasPrefix(saved.APIKey, "xbk_") {
		t.Fatalf("config file holds %q (%v)", raw, err)
	}
	key := saved.APIKey
	defer func() {
		if strings.Contains(c.all.String(), key) {
			t.Errorf("a command printed the API key")
		}
		if strings.Contains(c.all.String(), cliSignupKey) {
			t.Errorf("a command printed the signup key")
		}
	}()

	// login with a key on stdin, --json; a bad key is refused and not saved.
	var login struct {
		API     string            `json:"api"`
		Account apiclient.Account `json:"account"`
		Created bool              `json:"created"`
		File    string            `json:"configFile"`
	}
	if r := c.runWith(runOpts{stdin: key}, "login", "--api", api, "--api-key-stdin", "--json"); r.code != 0 ||
		json.Unmarshal([]byte(r.stdout), &login) != nil || login.API != api || login.Account.Name != "cli test" || login.Created || login.File != path {
		t.Fatalf("login --json: exit %d %+v\n%s%s", r.code, login, r.stdout, r.stderr)
	}
	r = c.runWith(runOpts{stdin: "xbk_not_a_key\n"}, "login", "--api", api)
	if r.code != 1 || !strings.Contains(r.stderr, "unauthorized (HTTP 401)") {
		t.Fatalf("login with a bad key: exit %d\n%s", r.code, r.stderr)
	}
	if after, _ := os.ReadFile(path); !bytes.Equal(after, raw) {
		t.Fatalf("a refused login changed the config file")
	}

	// account
	mustContain(t, "account", c.ok("account"), "id:", login.Account.ID, "name:", "cli test", "api:", api)
	var acct apiclient.Account
	if c.json(&acct, "account"); acct.ID != login.Account.ID {
		t.Fatalf("account --json: %+v", acct)
	}

	// keys list|create|revoke
	var created struct {
		APIKey string           `json:"apiKey"`
		Info   apiclient.APIKey `json:"apiKeyInfo"`
	}
	c.json(&created, "keys", "create", "--name", "ci")
	if !strings.HasPrefix(created.APIKey, "xbk_") || created.Info.Name != "ci" {
		t.Fatalf("keys create --json: %+v", created)
	}
	out := c.ok("keys", "create", "--name", "laptop")
	mustContain(t, "keys create", out, "name:", "laptop", "api key:", "xbk_", "shown this once")
	out = c.ok("keys", "list")
	mustContain(t, "keys list", out, "ID", "PREFIX", "NAME", "STATUS", "ci", "laptop", "active")
	mustContain(t, "keys revoke", c.ok("keys", "revoke", created.Info.ID), "API key "+created.Info.ID+" revoked")
	var keys []apiclient.APIKey
	c.json(&keys, "keys", "list")
	revoked := 0
	for _, k := range keys {
		if k.RevokedAt != nil {
			revoked++
			if k.ID != created.Info.ID {
				t.Errorf("key %s revoked, want %s", k.ID, created.Info.ID)
			}
		}
	}
	if len(keys) != 3 || revoked != 1 {
		t.Fatalf("keys list --json after revoke: %d keys, %d revoked", len(keys), revoked)
	}
	// The revoked key no longer works, and the error names the code.
	stderr := c.runWith(runOpts{vars: map[string]string{envAPIKey: created.APIKey}}, "account").stderr
	mustContain(t, "account with a revoked key", stderr, "bridge account: unauthorized (HTTP 401): invalid API key")

	// bridges create: every forward flag; the address and the webhook
	// secret once.
	out = c.ok("bridges", "create", "echo", "--url", target.srv.URL+"/ok", "--body-format", "relaycc",
		"--reply-mode", "none", "--timeout", "5s", "--concurrency", "3", "--header", "X-Team: blue",
		"--deny", "0x000000000000000000000000000000000000dEaD")
	mustContain(t, "bridges create", out, "address:", "0x", "webhook secret:", "whsec_", "shown this once")
	var sink struct {
		Bridge        apiclient.Bridge `json:"bridge"`
		WebhookSecret string           `json:"webhookSecret"`
	}
	c.json(&sink, "bridges", "create", "sink", "--url", target.srv.URL+"/refuse", "--retry", "final4xx")
	if sink.Bridge.Name != "sink" || !strings.HasPrefix(sink.WebhookSecret, "whsec_") || sink.Bridge.Forward.BodyFormat != "json" ||
		sink.Bridge.Forward.Retry != "final4xx" || sink.Bridge.Delivery != "webhook" {
		t.Fatalf("bridges create --json: %+v", sink)
	}
	if r := c.run("bridges", "create", "nowhere", "--url", "ftp://x"); r.code != 1 || !strings.Contains(r.stderr, "(HTTP 400)") {
		t.Fatalf("bridges create with a bad URL: exit %d\n%s", r.code, r.stderr)
	}

	// bridges list and get, by name and by id.
	out = c.ok("bridges", "list")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "ID") || strings.Index(lines[0], "ADDRESS") != strings.Index(lines[1], "0x") {
		t.Fatalf("bridges list is not an aligned table of two bridges:\n%s", out)
	}
	mustContain(t, "bridges list", out, "echo", "sink", "active", target.srv.URL+"/ok")
	var list []apiclient.Bridge
	if c.json(&list, "bridges", "list"); len(list) != 2 {
		t.Fatalf("bridges list --json: %+v", list)
	}
	var echo apiclient.Bridge
	for _, b := range list {
		if b.Name == "echo" {
			echo = b
		}
	}
	f := echo.Forward
	if f.BodyFormat != "relaycc" || f.ReplyMode != "none" || f.TimeoutMs != 5000 || f.MaxConcurrency != 3 ||
		f.Headers["X-Team"] != "<redacted>" || len(f.DenySenders) != 1 {
		t.Fatalf("the flags of bridges create did not reach the bridge: %+v", f)
	}
	out = c.ok("bridges", "get", "echo")
	mustContain(t, "bridges get", out, "id:", echo.ID, "address:", echo.Address, "body format:", "relaycc",
		"timeout:", "5s", "concurrency:", "3", "headers:", "X-Team", "live:", "online on node cli-node", "retry:", "standard",
		"delivery:", "webhook")
	mustContain(t, "bridges get of sink", c.ok("bridges", "get", "sink"), "retry:", "final4xx")
	var got struct {
		Bridge apiclient.Bridge `json:"bridge"`
		Live   *apiclient.Live  `json:"live"`
	}
	if c.json(&got, "bridges", "get", echo.ID); got.Bridge.Name != "echo" || got.Live == nil || got.Live.Live != "online" {
		t.Fatalf("bridges get --json: %+v", got)
	}
	mustContain(t, "bridges get of an unknown name", c.fails("bridges", "get", "nosuch"), `no bridge has the id, name or address "nosuch"`)
	mustContain(t, "bridges get of an unknown id", c.fails("bridges", "get", "00000000-0000-4000-8000-000000000000"),
		"bridge bridges get: not_found (HTTP 404): bridge not found")

	// The README's quick start: a bridge whose endpoint is the node's own
	// /canary, which answers as a bot.
	c.ok("bridges", "create", "bot", "--url", api+"/canary", "--body-format", "relaycc", "--reply-mode", "reply")
	var bot apiclient.Bridge
	c.json(&list, "bridges", "list")
	for _, b := range list {
		if b.Name == "bot" {
			bot = b
		}
	}

	// send: echo and bot send to sink, whose endpoint refuses the
	// message, which makes a dead letter at once. Each message opens a
	// conversation of its own.
	//
	// The runtime sometimes loses a conversation's invitation published
	// while identities are adding topics to the node's subscription (no
	// inbound line in the node's log, even 30s later, and later messages
	// of that conversation are lost with it); that is not the CLI's
	// concern, so a message that did not arrive is sent again from a new
	// bridge, in a new conversation, and the test says so.
	arrived := func(bridge, text string) (apiclient.Delivery, bool) {
		var d []apiclient.Delivery
		c.json(&d, "deliveries", bridge)
		for _, v := range d {
			if textOf(v) == text {
				return v, true
			}
		}
		return apiclient.Delivery{}, false
	}
	var spares []string
	// send sends text with send, then from spare bridges, until it
	// reaches bridge; it returns the sender's address.
	send := func(bridge, to, text string, send func()) string {
		t.Helper()
		for try := 1; ; try++ {
			send()
			deadline := time.Now().Add(10 * time.Second)
			for time.Now().Before(deadline) {
				if d, ok := arrived(bridge, text); ok {
					return d.SenderAddress
				}
				time.Sleep(50 * time.Millisecond)
			}
			if try == 3 {
				t.Fatalf("%q never reached %s in 3 conversations", text, bridge)
			}
			t.Logf("the runtime lost %q to %s; sending it again from a new bridge", text, bridge)
			var spare struct {
				Bridge apiclient.Bridge `json:"bridge"`
			}
			c.json(&spare, "bridges", "create", "spare", "--url", target.srv.URL+"/ok")
			spares = append(spares, spare.Bridge.ID)
			send = func() { c.ok("send", spare.Bridge.ID, to, text) }
		}
	}
	from1 := send("sink", sink.Bridge.Address, "hello sink", func() {
		mustContain(t, "send", c.ok("send", "echo", sink.Bridge.Address, "hello sink"), "accepted", sink.Bridge.Address)
	})
	from2 := send("sink", sink.Bridge.Address, "second hello", func() {
		var sent struct {
			MessageID string `json:"messageId"`
		}
		if c.json(&sent, "send", bot.ID, sink.Bridge.Address, "second hello"); sent.MessageID == "" {
			t.Fatalf("send --json: %+v", sent)
		}
	})
	mustContain(t, "send to a bad address", c.runWith(runOpts{}, "send", "echo", "0x12", "hi").stderr, "invalid_field (HTTP 400)")

	// The bot's endpoint takes what echo sends it: its delivery succeeded.
	from3 := send("bot", bot.Address, "hello bot", func() { c.ok("send", "echo", bot.Address, "hello bot") })
	waitUntil(t, "the message in the bot's deliveries", func() bool {
		var d []apiclient.Delivery
		c.json(&d, "deliveries", "bot", "--status", "succeeded")
		return len(d) == 1 && textOf(d[0]) == "hello bot" && strings.EqualFold(d[0].SenderAddress, from3)
	})
	mustContain(t, "deliveries of bot", c.ok("deliveries", "bot"), "succeeded", "hello bot")

	// deliveries: the decoded text, the attempts and the last error.
	deadLetters := func(n int) []apiclient.Delivery {
		t.Helper()
		var dead []apiclient.Delivery
		deadline := time.Now().Add(30 * time.Second)
		for {
			dead = nil
			c.json(&dead, "deliveries", "sink", "--status", "dead")
			if len(dead) == n {
				return dead
			}
			if time.Now().After(deadline) {
				t.Fatalf("sink has %d dead letters, want %d; its deliveries:\n%s", len(dead), n, c.ok("deliveries", "sink"))
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	dead := deadLetters(2)
	senders := map[string]string{strings.ToLower(from1): "hello sink", strings.ToLower(from2): "second hello"}
	texts := map[string]bool{}
	for _, d := range dead {
		texts[textOf(d)] = true
		if d.Attempts != 1 || !strings.Contains(d.LastError, "400") || senders[strings.ToLower(d.SenderAddress)] != textOf(d) ||
			d.NextAttemptAt != nil || len(d.AttemptLog) != 1 || d.AttemptLog[0].Status == nil || *d.AttemptLog[0].Status != 400 {
			t.Errorf("dead letter %+v", d)
		}
	}
	if !texts["hello sink"] || !texts["second hello"] {
		t.Fatalf("deliveries --json texts: %v", texts)
	}
	out = c.ok("deliveries", "sink")
	mustContain(t, "deliveries", out, "RECEIVED", "FROM", "ATTEMPTS", "LAST ERROR", "hello sink", "second hello", "dead", "400")
	if r := c.run("deliveries", "sink", "--status", "lost"); r.code != 2 {
		t.Fatalf("deliveries --status lost: exit %d", r.code)
	}
	// One delivery: its text and its attempt history, for people and as
	// the API's object.
	out = c.ok("deliveries", "sink", dead[0].ID)
	mustContain(t, "deliveries sink ID", out, "id:", dead[0].ID, "text:", textOf(dead[0]), "status:", "dead",
		"next attempt:", "none (final)", "ATTEMPT", "STATUS", "LATENCY", "ERROR", "400")
	var one apiclient.Delivery
	if c.json(&one, "deliveries", "sink", dead[0].ID); one.ID != dead[0].ID || textOf(one) != textOf(dead[0]) ||
		len(one.AttemptLog) != 1 || one.AttemptLog[0].LatencyMs <= 0 {
		t.Fatalf("deliveries sink ID --json: %+v", one)
	}
	mustContain(t, "deliveries of an unknown id", c.fails("deliveries", "sink", "999999"), "not_found (HTTP 404)")

	// replay one, then every dead letter with a progress bar on a terminal.
	hits := target.count("/refuse")
	mustContain(t, "replay", c.ok("replay", "sink", dead[0].ID), "delivery "+dead[0].ID+" is queued again")
	waitUntil(t, "the replayed delivery to reach the endpoint", func() bool { return target.count("/refuse") > hits })
	deadLetters(2)
	r = c.runWith(runOpts{tty: true}, "replay", "sink", "--all-dead")
	if r.code != 0 || !strings.Contains(r.stdout, "\rreplaying [") || !strings.Contains(r.stdout, "2/2") ||
		!strings.Contains(r.stdout, "replayed 2 of 2 dead letters") {
		t.Fatalf("replay --all-dead on a terminal: exit %d\n%q\n%s", r.code, r.stdout, r.stderr)
	}
	deadLetters(2)
	var replayed struct {
		Replayed []string `json:"replayed"`
		Failed   int      `json:"failed"`
	}
	if c.json(&replayed, "replay", "sink", "--all-dead"); len(replayed.Replayed) != 2 || replayed.Failed != 0 {
		t.Fatalf("replay --all-dead --json: %+v", replayed)
	}
	deadLetters(2)
	if out := c.ok("replay", "sink", "--all-dead"); strings.Contains(out, "\r") || out != "replayed 2 of 2 dead letters\n" {
		t.Fatalf("replay --all-dead on a pipe: %q", out)
	}
	mustContain(t, "replay of a live delivery", c.fails("replay", "sink", "999999"), "not_found (HTTP 404)")

	// secret rotate
	out = c.ok("secret", "rotate", "sink", "--grace", "1h")
	mustContain(t, "secret rotate", out, "webhook secret:", "whsec_", "valid for 1h0m0s")
	var rotated struct {
		Secret   string `json:"webhookSecret"`
		ValidFor int64  `json:"previousSecretValidFor"`
	}
	if c.json(&rotated, "secret", "rotate", sink.Bridge.ID, "--grace", "0s"); !strings.HasPrefix(rotated.Secret, "whsec_") || rotated.ValidFor != 0 {
		t.Fatalf("secret rotate --json: %+v", rotated)
	}

	// Colour: only on a terminal, and not with NO_COLOR.
	if r := c.runWith(runOpts{tty: true}, "bridges", "list"); !strings.Contains(r.stdout, ansiGreen+"active"+ansiDefault) {
		t.Fatalf("no colour on a terminal:\n%q", r.stdout)
	}
	if r := c.runWith(runOpts{tty: true, vars: map[string]string{"NO_COLOR": "1"}}, "bridges", "list"); strings.Contains(r.stdout, "\x1b[") {
		t.Fatalf("colour with NO_COLOR:\n%q", r.stdout)
	}
	if strings.Contains(c.ok("bridges", "list"), "\x1b[") {
		t.Fatal("colour on a pipe")
	}

	// bridges update: only the flags given change.
	out = c.ok("bridges", "update", "echo", "--status", "disabled", "--deny=")
	mustContain(t, "bridges update", out, "status:", "disabled")
	var updated apiclient.Bridge
	c.json(&updated, "bridges", "update", echo.ID, "--status", "active", "--name", "echo2")
	if updated.Status != "active" || updated.Name != "echo2" || len(updated.Forward.DenySenders) != 0 ||
		updated.Forward.BodyFormat != "relaycc" || updated.Forward.TimeoutMs != 5000 {
		t.Fatalf("bridges update --json: %+v", updated)
	}
	if r := c.run("bridges", "update", "echo2"); r.code != 2 || !strings.Contains(r.stderr, "nothing to change") {
		t.Fatalf("bridges update without flags: exit %d\n%s", r.code, r.stderr)
	}

	// bridges delete
	c.ok("bridges", "delete", bot.Address)
	for _, id := range spares {
		c.ok("bridges", "delete", id)
	}
	mustContain(t, "bridges delete", c.ok("bridges", "delete", "echo2"), "bridge "+echo.ID+" deleted")
	var deleted struct {
		ID      string `json:"id"`
		Deleted bool   `json:"deleted"`
	}
	if c.json(&deleted, "bridges", "delete", "sink"); deleted.ID != sink.Bridge.ID || !deleted.Deleted {
		t.Fatalf("bridges delete --json: %+v", deleted)
	}
	if c.json(&list, "bridges", "list"); len(list) != 0 {
		t.Fatalf("bridges after delete: %+v", list)
	}

	// BRIDGE_API_URL and BRIDGE_API_KEY override the saved login.
	other := newCLI(t, map[string]string{envAPIURL: api, envAPIKey: key})
	acct = apiclient.Account{}
	if other.json(&acct, "account"); acct.ID != login.Account.ID {
		t.Fatalf("account with BRIDGE_API_URL and BRIDGE_API_KEY: %+v", acct)
	}
	// BRIDGE_API_KEY wins over the saved key: a wrong one is refused.
	r = c.runWith(runOpts{vars: map[string]string{envAPIKey: "xbk_wrong"}}, "account")
	if r.code != 1 || !strings.Contains(r.stderr, "unauthorized (HTTP 401)") {
		t.Fatalf("account with a wrong BRIDGE_API_KEY: exit %d\n%s", r.code, r.stderr)
	}
	mustContain(t, "account without a login", newCLI(t, nil).fails("account"), "not logged in to "+defaultAPI)
	if strings.Contains(other.all.String(), key) {
		t.Error("a command printed the API key from BRIDGE_API_KEY")
	}
}

// TestAdminCommandsAgainstARunningNode runs admin members, placement and
// drain with the admin token from the environment and from stdin.
func TestAdminCommandsAgainstARunningNode(t *testing.T) {
	api := startDevNode(t)
	c := newCLI(t, map[string]string{config.EnvAdminToken: cliAdminToken, envAPIURL: api})

	out := c.ok("admin", "members")
	mustContain(t, "admin members", out, "cluster provider", "answered by node cli-node", "NODE", "HOSTED", "cli-node", "live", "yes")
	var members apiclient.Members
	if c.json(&members, "admin", "members"); members.Self != "cli-node" || len(members.Members) != 1 || !members.Members[0].Self {
		t.Fatalf("admin members --json: %+v", members)
	}
	// A bridge's identity holds a lease on this node.
	if r := c.runWith(runOpts{stdin: cliSignupKey}, "login", "--signup"); r.code != 0 {
		t.Fatalf("login --signup: exit %d\n%s", r.code, r.stderr)
	}
	var b struct {
		Bridge apiclient.Bridge `json:"bridge"`
	}
	c.json(&b, "bridges", "create", "placed", "--url", "http://127.0.0.1:9/hook")
	waitUntil(t, "the bridge's lease", func() bool {
		var ps []apiclient.Placement
		c.json(&ps, "admin", "placement")
		return len(ps) == 1
	})
	out = c.ok("admin", "placement")
	mustContain(t, "admin placement", out, b.Bridge.ID, b.Bridge.Address)
	mustContain(t, "admin placement", out, "BRIDGE", "EPOCH", "cli-node")
	var placement []apiclient.Placement
	if c.json(&placement, "admin", "placement", "--node", "cli-node"); len(placement) == 0 || placement[0].Node != "cli-node" {
		t.Fatalf("admin placement --json: %+v", placement)
	}
	if c.json(&placement, "admin", "placement", "--node", "elsewhere"); len(placement) != 0 {
		t.Fatalf("admin placement of another node: %+v", placement)
	}
	mustContain(t, "admin drain of an unknown node", c.fails("admin", "drain", "ghost"),
		`bridge admin drain: not_found (HTTP 404): no cluster member has node id "ghost"`)

	// `bridge drain`, the preStop hook's command, the same way.
	mustContain(t, "drain of an unknown node", c.fails("drain", "--node-id", "ghost", "--api="+api, "--timeout=10s"),
		`bridge drain: not_found (HTTP 404): no cluster member has node id "ghost"`)
	if r := c.run("drain", "--api", api); r.code != 2 || !strings.Contains(r.stderr, "--node-id or BRIDGE_NODE_ID is required") {
		t.Fatalf("drain without a node: exit %d\n%s", r.code, r.stderr)
	}
	if r := c.run("drain", "--node-id", "n", "--api", "ftp://x"); r.code != 2 || !strings.Contains(r.stderr, "is not an http(s) URL") {
		t.Fatalf("drain with an ftp URL: exit %d\n%s", r.code, r.stderr)
	}

	// The token from stdin, and a wrong one.
	noToken := newCLI(t, map[string]string{envAPIURL: api})
	if r := noToken.runWith(runOpts{stdin: cliAdminToken + "\n"}, "admin", "members", "--admin-token-stdin", "--json"); r.code != 0 {
		t.Fatalf("admin members --admin-token-stdin: exit %d\n%s", r.code, r.stderr)
	}
	if r := noToken.runWith(runOpts{stdin: "wrong\n"}, "admin", "members", "--admin-token-stdin"); r.code != 1 ||
		!strings.Contains(r.stderr, "unauthorized (HTTP 401): invalid admin token") {
		t.Fatalf("admin members with a wrong token: exit %d\n%s", r.code, r.stderr)
	}
	if r := noToken.run("admin", "members"); r.code != 2 || !strings.Contains(r.stderr, "BRIDGE_ADMIN_TOKEN") {
		t.Fatalf("admin members without a token: exit %d\n%s", r.code, r.stderr)
	}
	if strings.Contains(c.all.String()+noToken.all.String(), cliAdminToken) {
		t.Error("a command printed the admin token")
	}
}

// TestUnreachableAPINamesTheURL runs client and admin commands against a
// port nothing listens on: exit 1 and an error naming the URL.
func TestUnreachableAPINamesTheURL(t *testing.T) {
	api := "http://" + testkit.ClosedAddr(t)
	c := newCLI(t, map[string]string{envAPIKey: "xbk_unused", config.EnvAdminToken: "unused-token"})
	for _, args := range [][]string{
		{"account", "--api", api},
		{"bridges", "list", "--api", api},
		{"send", "echo", "0x0000000000000000000000000000000000000001", "hi", "--api", api},
		{"admin", "members", "--api", api},
	} {
		stderr := c.fails(args...)
		if !strings.Contains(stderr, "cannot reach the API at "+api) || strings.Count(strings.TrimSpace(stderr), "\n") != 0 {
			t.Errorf("bridge %v: %q", args, stderr)
		}
	}
	r := c.runWith(runOpts{stdin: "xbk_unused\n"}, "login", "--api", api)
	if r.code != 1 || !strings.Contains(r.stderr, "cannot reach the API at "+api) {
		t.Errorf("login: exit %d %q", r.code, r.stderr)
	}
	if _, err := os.Stat(filepath.Join(c.vars["XDG_CONFIG_HOME"], "xmtpbridge")); err == nil {
		t.Error("a failed login wrote the config file")
	}
	if strings.Contains(c.all.String(), "xbk_unused") {
		t.Error("a command printed the API key")
	}
}
