package e2e

import (
	"context"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/xmtpbridge/bridge/actors/webhook/webhooktest"
	"github.com/xmtpbridge/bridge/internal/freeport"
	"github.com/xmtpbridge/bridge/internal/testkit"
	"github.com/xmtpbridge/bridge/persistence/pgtest"
)

// TestDevRelayccEchoWithXMTPJS runs `bridge dev` as `make run` does (the
// local XMTP node in-process), follows its quick start with the relaycc
// API, and has xmtp-js say "hello" to the bridge: the target gets the
// relaycc body with a valid signature and its answer comes back to
// xmtp-js as the reply. The relaycc /instance shows the identity live on
// this node, and SIGTERM ends the process with status 0.
func TestDevRelayccEchoWithXMTPJS(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	db := pgtest.NewDatabase(t, template)
	httpAddr, grpcAddr, gwAddr := freeport.Addr(t), freeport.Addr(t), freeport.Addr(t)
	api := "http://" + httpAddr
	dev := start(t, "bridge dev", dir, map[string]string{
		"DATABASE_URL": db, "BRIDGE_HTTP_ADDR": httpAddr, "BRIDGE_NODE_ID": "dev-node",
		"BRIDGE_XMTP_NODE_GRPC_ADDR": grpcAddr, "BRIDGE_XMTP_NODE_HTTP_ADDR": gwAddr,
		"BRIDGE_SIGNUP_KEY": signupKey, "BRIDGE_CANARY_INTERVAL": "0",
	}, "dev")
	dev.waitHTTP(api+"/readyz", 60*time.Second)
	testkit.WaitFor(t, 10*time.Second, func() bool {
		return strings.Contains(dev.out.String(), "Quick start")
	}, "the quick start on stdout")
	if out := dev.out.String(); !strings.Contains(out, signupKey) || !strings.Contains(out, "http://"+gwAddr) ||
		!strings.Contains(out, "quickstart.cjs") {
		t.Fatalf("quick start lacks the signup key, the XMTP URL or the xmtp-js snippet:\n%s", out)
	}

	tg := webhooktest.NewTarget(t, "relaycc")
	signup := mustCall(t, 200, "POST", api+"/signup", "", map[string]any{
		"key": signupKey, "forwardHandler": map[string]any{"httpUrl": tg.URL, "isBot": true},
	})
	addr := str(signup, "ethAddress")
	tg.SetSecret(str(signup, "webhookSecret"))

	inst := mustCall(t, 200, "POST", api+"/instance", "", map[string]any{"key": str(signup, "hookToken"), "bridgeAddress": addr})
	if str(inst, "instance", "live") != "online" || str(inst, "instance", "node") != "dev-node" {
		t.Fatalf("/instance = %v, want the identity live on dev-node", inst)
	}

	js := runJS(t, "quickstart.cjs", addr, "hello", "http://"+gwAddr)
	me := js.next("ready", time.Minute)
	js.next("sent", time.Minute)
	reply := js.next("reply", time.Minute)
	if reply.Text != "echo: hello" || !strings.EqualFold(reply.Sender, addr) {
		t.Fatalf("xmtp-js got %+v, want \"echo: hello\" from %s", reply, addr)
	}
	body := tg.FirstBody()
	if str(body, "message", "content") != "hello" || !strings.EqualFold(str(body, "message", "conversation", "peerAddress"), me.Address) {
		t.Fatalf("relaycc body %v, want content hello from %s", body, me.Address)
	}
	if len(tg.BadSignatures()) != 0 {
		t.Fatalf("%d requests had a bad signature", len(tg.BadSignatures()))
	}

	if err := dev.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := dev.wait(45 * time.Second); code != 0 {
		t.Fatalf("bridge dev exited with %d after SIGTERM, want 0", code)
	}
}

// TestJSONBridgeEchoWithXMTPJS is the same round trip through a bridge of
// the /v1 API with the json body format.
func TestJSONBridgeEchoWithXMTPJS(t *testing.T) {
	t.Parallel()
	c := newCluster(t, nil)
	tg := webhooktest.NewTarget(t, "json")
	acct := mustCall(t, 201, "POST", c.api+"/v1/accounts", "", map[string]any{"name": "owner", "signupKey": signupKey})
	key := str(acct, "apiKey")
	created := mustCall(t, 201, "POST", c.api+"/v1/bridges", key, map[string]any{
		"name": "echo", "forward": map[string]any{"url": tg.URL, "bodyFormat": "json", "replyMode": "reply"},
	})
	tg.SetSecret(str(created, "webhookSecret"))
	addr := str(created, "bridge", "address")

	js := runJS(t, "quickstart.cjs", addr, "hello", "http://"+c.xmtpHTTP)
	me := js.next("ready", time.Minute)
	sent := js.next("sent", time.Minute)
	reply := js.next("reply", time.Minute)
	if reply.Text != "echo: hello" || !strings.EqualFold(reply.Sender, addr) {
		t.Fatalf("xmtp-js got %+v, want \"echo: hello\" from %s", reply, addr)
	}
	body := tg.FirstBody()
	if str(body, "content") != "hello" || !strings.EqualFold(str(body, "sender"), me.Address) || str(body, "id") != sent.ID ||
		str(body, "contentType") != "xmtp.org/text:1.0" {
		t.Fatalf("json body %v, want message %s \"hello\" from %s", body, sent.ID, me.Address)
	}
	if len(tg.BadSignatures()) != 0 {
		t.Fatalf("%d requests had a bad signature", len(tg.BadSignatures()))
	}
}

// TestHookAndMessagesReachXMTPJS sends through the reverse proxy from REST,
// with relaycc /hook and with /v1/bridges/:id/messages, to xmtp-js
// recipients that have never talked to the bridge.
func TestHookAndMessagesReachXMTPJS(t *testing.T) {
	t.Parallel()
	c := newCluster(t, nil)
	tg := webhooktest.NewTarget(t, "relaycc")
	signup := mustCall(t, 200, "POST", c.api+"/signup", "", map[string]any{
		"key": signupKey, "forwardHandler": map[string]any{"httpUrl": tg.URL, "isBot": false},
	})
	relayAddr := str(signup, "ethAddress")
	acct := mustCall(t, 201, "POST", c.api+"/v1/accounts", "", map[string]any{"name": "owner", "signupKey": signupKey})
	key := str(acct, "apiKey")
	created := mustCall(t, 201, "POST", c.api+"/v1/bridges", key, map[string]any{
		"name": "out", "forward": map[string]any{"url": tg.URL},
	})
	v1Addr, v1ID := str(created, "bridge", "address"), str(created, "bridge", "id")

	viaHook := runJS(t, "peer.cjs", "receive", "http://"+c.xmtpHTTP, relayAddr, "-", "sent with /hook")
	viaV1 := runJS(t, "peer.cjs", "receive", "http://"+c.xmtpHTTP, v1Addr, "-", "sent with /v1 messages")
	hookPeer := viaHook.next("ready", time.Minute).Address
	v1Peer := viaV1.next("ready", time.Minute).Address

	// The recipients publish their contact bundles as they start; a send
	// before that answers an error, so retry until it is accepted.
	var hook map[string]any
	testkit.WaitFor(t, 30*time.Second, func() bool {
		status, out := call(t, "POST", c.api+"/hook", "", map[string]any{
			"sendFromBridgeAddress": relayAddr, "targetAddress": hookPeer, "message": "sent with /hook", "token": str(signup, "hookToken"),
		})
		hook = out
		return status == 200
	}, "/hook to accept the send")
	if str(hook, "forwardedMessage", "id") == "" {
		t.Fatalf("/hook answer %v has no message id", hook)
	}
	var sent map[string]any
	testkit.WaitFor(t, 30*time.Second, func() bool {
		status, out := call(t, "POST", c.api+"/v1/bridges/"+v1ID+"/messages", key, map[string]any{"to": v1Peer, "content": "sent with /v1 messages"})
		sent = out
		return status == 202
	}, "/v1 messages to accept the send")

	got := viaHook.next("received", time.Minute)
	if !strings.EqualFold(got.Sender, relayAddr) || got.ID != str(hook, "forwardedMessage", "id") {
		t.Fatalf("xmtp-js received %+v, want message %s from %s", got, str(hook, "forwardedMessage", "id"), relayAddr)
	}
	got = viaV1.next("received", time.Minute)
	if !strings.EqualFold(got.Sender, v1Addr) || got.ID != str(sent, "messageId") {
		t.Fatalf("xmtp-js received %+v, want message %s from %s", got, str(sent, "messageId"), v1Addr)
	}
}

// TestCanaryRoundTripIsRecorded lets the canary prober probe a new bridge:
// the round trip lands in canary_results and in /metrics.
func TestCanaryRoundTripIsRecorded(t *testing.T) {
	t.Parallel()
	c := newCluster(t, map[string]string{"BRIDGE_CANARY_INTERVAL": "1s"})
	tg := webhooktest.NewTarget(t, "json")
	acct := mustCall(t, 201, "POST", c.api+"/v1/accounts", "", map[string]any{"name": "owner", "signupKey": signupKey})
	created := mustCall(t, 201, "POST", c.api+"/v1/bridges", str(acct, "apiKey"), map[string]any{
		"name": "probed", "forward": map[string]any{"url": tg.URL},
	})
	id := str(created, "bridge", "id")

	ids := mustCall(t, 200, "GET", c.api+"/v1/system/identities", "", nil)
	if str(ids, "identities", "canary") == "" || str(ids, "identities", "api") == "" {
		t.Fatalf("/v1/system/identities = %v", ids)
	}
	testkit.WaitFor(t, 60*time.Second, func() bool {
		return len(metric(t, c.api, `bridge_canary_last_success_timestamp_seconds{bridge="`+id+`"}`)) == 1
	}, "a canary round trip in /metrics")
	if lines := metric(t, c.api, "bridge_canary_rtt_seconds_count"); len(lines) != 1 || strings.HasSuffix(lines[0], " 0") {
		t.Fatalf("bridge_canary_rtt_seconds_count = %v, want at least one observation", lines)
	}
	conn, err := pgx.Connect(context.Background(), c.db)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var received int
	if err := conn.QueryRow(context.Background(), `SELECT count(*) FROM canary_results
		WHERE bridge_id = $1 AND received_at IS NOT NULL AND rtt_ms >= 0 AND error = ''`, id).Scan(&received); err != nil {
		t.Fatal(err)
	}
	if received == 0 {
		t.Fatal("no canary round trip recorded in canary_results")
	}
	if tg.Requests() != 0 {
		t.Fatalf("canary messages reached the forward target %d times; they must stay with the canary handler", tg.Requests())
	}
	// The node counts its actors itself; protoactor's own metrics, whose
	// callbacks grow with every actor ever spawned, stay off.
	for _, actor := range []string{"identity", "canary"} {
		lines := metric(t, c.api, `bridge_actor_spawns_total{actor="`+actor+`"}`)
		if len(lines) != 1 || strings.HasSuffix(lines[0], " 0") {
			t.Fatalf("bridge_actor_spawns_total{actor=%q} = %v, want one series above 0", actor, lines)
		}
	}
	if lines := metric(t, c.api, "protoactor_"); len(lines) != 0 {
		t.Fatalf("/metrics carries protoactor's own metrics: %v", lines[:min(3, len(lines))])
	}
}
