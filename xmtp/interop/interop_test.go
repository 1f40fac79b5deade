package interop

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	messagev1 "github.com/xmtp/proto/v3/go/message_api/v1"
	mc "github.com/xmtp/proto/v3/go/message_contents"
	"google.golang.org/protobuf/proto"

	"github.com/xmtpbridge/bridge/internal/testkit"
	"github.com/xmtpbridge/bridge/persistence/pgtest"
	"github.com/xmtpbridge/bridge/xmtp/api"
	"github.com/xmtpbridge/bridge/xmtp/client"
	"github.com/xmtpbridge/bridge/xmtp/content"
	"github.com/xmtpbridge/bridge/xmtp/conversation"
	"github.com/xmtpbridge/bridge/xmtp/keys"
	"github.com/xmtpbridge/bridge/xmtp/node"
	"github.com/xmtpbridge/bridge/xmtp/node/nodetest"
)

// event is one JSON line printed by js/peer.cjs.
type event struct {
	Event          string `json:"event"`
	Address        string `json:"address"`
	ID             string `json:"id"`
	Sender         string `json:"sender"`
	Text           string `json:"text"`
	ContentType    string `json:"contentType"`
	ConversationID string `json:"conversationId"`
	Topic          string `json:"topic"`
}

// jsPeer is a running peer.cjs process.
type jsPeer struct {
	t      *testing.T
	cmd    *exec.Cmd
	events chan event
	done   chan error
	stderr *strings.Builder
}

func requireNodeModules(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs("js")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "@xmtp", "xmtp-js", "package.json")); err != nil {
		t.Fatalf("xmtp-js is not installed: run `npm ci --prefix xmtp/interop/js` (make test does this): %v", err)
	}
	if _, err := exec.LookPath("node"); err != nil {
		t.Fatalf("node is not on PATH (Node 20 is expected at /usr/bin/node): %v", err)
	}
	return dir
}

func startJS(t *testing.T, ctx context.Context, args ...string) *jsPeer {
	t.Helper()
	dir := requireNodeModules(t)
	cmd := exec.CommandContext(ctx, "node", append([]string{filepath.Join(dir, "peer.cjs")}, args...)...)
	cmd.Dir = dir
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p := &jsPeer{t: t, cmd: cmd, events: make(chan event, 16), done: make(chan error, 1), stderr: &strings.Builder{}}
	cmd.Stderr = p.stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start node peer.cjs: %v", err)
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			var ev event
			if json.Unmarshal(sc.Bytes(), &ev) == nil && ev.Event != "" {
				p.events <- ev
			}
		}
		io.Copy(io.Discard, stdout)
		close(p.events)
		p.done <- cmd.Wait()
	}()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
		}
	})
	return p
}

// expect waits for the next event and checks its kind.
func (p *jsPeer) expect(ctx context.Context, kind string) event {
	p.t.Helper()
	select {
	case ev, ok := <-p.events:
		if !ok {
			err := <-p.done
			p.t.Fatalf("xmtp-js peer exited before %q: %v\nstderr:\n%s", kind, err, p.stderr.String())
		}
		if ev.Event != kind {
			p.t.Fatalf("xmtp-js peer sent %q, want %q", ev.Event, kind)
		}
		return ev
	case <-ctx.Done():
		p.t.Fatalf("timed out waiting for xmtp-js event %q\nstderr:\n%s", kind, p.stderr.String())
	}
	return event{}
}

// wait waits for the process to exit successfully.
func (p *jsPeer) wait(ctx context.Context) {
	p.t.Helper()
	for range p.events {
	}
	select {
	case err := <-p.done:
		if err != nil {
			p.t.Fatalf("xmtp-js peer failed: %v\nstderr:\n%s", err, p.stderr.String())
		}
	case <-ctx.Done():
		p.t.Fatal("timed out waiting for the xmtp-js peer to exit")
	}
}

// startNode runs the local XMTP node, with authn on, over a fresh database.
func startNode(t *testing.T) *node.Node {
	t.Helper()
	db := pgtest.NewDatabase(t, pgtest.Template{Name: "xmtpinterop", Migrate: node.Migrate})
	return nodetest.Start(t, node.Config{DatabaseURL: db, Authn: true})
}

func apiURL(n *node.Node) string { return "http://" + n.HTTPAddr() }

func newGoClient(t *testing.T, ctx context.Context, n *node.Node) *client.Client {
	t.Helper()
	conn, err := api.Dial(ctx, n.GRPCAddr())
	if err != nil {
		t.Fatalf("dial node: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	b, err := keys.Generate()
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.New(client.Config{Bundle: b, API: conn})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(ctx); err != nil {
		t.Fatalf("publish Go contact: %v", err)
	}
	return c
}

func convIDArg(id string) string {
	if id == "" {
		return "-"
	}
	return id
}

// TestJSStartsGoReplies: xmtp-js starts a conversation with a Go identity
// and sends text, plain or compressed; Go decrypts it and replies; xmtp-js
// reads the reply.
func TestJSStartsGoReplies(t *testing.T) {
	n := startNode(t)
	cases := []struct{ convID, compression string }{
		{"", "none"},
		{"xmtpbridge.test/js-starts", "none"},
		{"xmtpbridge.test/deflate", "deflate"},
		{"xmtpbridge.test/gzip", "gzip"},
	}
	for _, tc := range cases {
		convID := tc.convID
		t.Run("conversationId="+convIDArg(convID), func(t *testing.T) {
			ctx := testkit.Context(t, 90*time.Second)
			g := newGoClient(t, ctx, n)
			inbound, err := g.Inbound(ctx)
			if err != nil {
				t.Fatal(err)
			}
			js := startJS(t, ctx, "start", apiURL(n), g.Address(), convIDArg(convID), "hello from xmtp-js", "reply from go", tc.compression)
			ready := js.expect(ctx, "ready")
			sent := js.expect(ctx, "sent")

			var m *conversation.Message
			select {
			case m = <-inbound:
			case <-ctx.Done():
				t.Fatalf("Go never received the xmtp-js message\nstderr:\n%s", js.stderr.String())
			}
			if m == nil {
				t.Fatal("inbound stream closed")
			}
			text, err := m.Content.Text()
			if err != nil || text != "hello from xmtp-js" {
				t.Fatalf("Go decrypted %q, %v", text, err)
			}
			if m.Sender != ready.Address || m.Topic != sent.Topic || m.ID != sent.ID {
				t.Fatalf("message %+v does not match xmtp-js sender %s topic %s id %s", m, ready.Address, sent.Topic, sent.ID)
			}
			convs, err := g.Conversations(ctx)
			if err != nil || len(convs) != 1 || convs[0].ID != convID || convs[0].Peer != ready.Address {
				t.Fatalf("Go conversations: %+v, %v", convs, err)
			}
			if convID != "" && convs[0].Metadata["origin"] != "xmtp-js" {
				t.Fatalf("metadata %v", convs[0].Metadata)
			}
			if _, err := g.Reply(ctx, m.Topic, content.Text("reply from go")); err != nil {
				t.Fatalf("Go replies: %v", err)
			}
			reply := js.expect(ctx, "reply")
			if reply.Sender != g.Address() || reply.Text != "reply from go" || reply.ConversationID != convID || reply.ContentType != "xmtp.org/text:1.0" {
				t.Fatalf("xmtp-js read %+v", reply)
			}
			js.wait(ctx)
			if snap := g.Rejections().Snapshot(); sum(snap) != 0 {
				t.Fatalf("rejections: %v", snap)
			}
		})
	}
}

// TestGoStartsJSReads: Go starts a conversation with an xmtp-js identity;
// xmtp-js lists it and reads the message.
func TestGoStartsJSReads(t *testing.T) {
	n := startNode(t)
	for _, convID := range []string{"", "xmtpbridge.test/go-starts"} {
		t.Run("conversationId="+convIDArg(convID), func(t *testing.T) {
			ctx := testkit.Context(t, 90*time.Second)
			g := newGoClient(t, ctx, n)
			js := startJS(t, ctx, "receive", apiURL(n), g.Address(), convIDArg(convID), "hello from go")
			ready := js.expect(ctx, "ready")
			checkJSContact(t, ctx, n, ready.Address)
			sent, err := g.Send(ctx, ready.Address, content.Text("hello from go"), convID)
			if err != nil {
				t.Fatalf("Go sends: %v", err)
			}
			got := js.expect(ctx, "received")
			if got.Sender != g.Address() || got.Text != "hello from go" || got.ConversationID != convID || got.Topic != sent.Topic || got.ID != sent.ID {
				t.Fatalf("xmtp-js read %+v, Go sent %+v", got, sent)
			}
			js.wait(ctx)
		})
	}
}

// checkJSContact decodes each contact envelope xmtp-js published, the
// legacy V1 bundle and the V2 bundle, and checks both verify to its address.
func checkJSContact(t *testing.T, ctx context.Context, n *node.Node, addr string) {
	t.Helper()
	conn, err := api.Dial(ctx, n.GRPCAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var versions []string
	err = conn.QueryAll(ctx, keys.ContactTopic(addr), 0, 0, func(env *messagev1.Envelope) error {
		var cb mc.ContactBundle
		if err := proto.Unmarshal(env.Message, &cb); err != nil {
			return err
		}
		p, err := keys.DecodeContact(env.Message)
		if err != nil {
			return err
		}
		if p.Address != addr {
			t.Errorf("contact bundle verifies to %s, want %s", p.Address, addr)
		}
		switch cb.Version.(type) {
		case *mc.ContactBundle_V1:
			versions = append(versions, "v1")
		case *mc.ContactBundle_V2:
			versions = append(versions, "v2")
		}
		return nil
	})
	if err != nil {
		t.Fatalf("decode xmtp-js contact: %v", err)
	}
	if strings.Join(versions, ",") != "v1,v2" {
		t.Fatalf("xmtp-js contact versions %v, want v1 then v2", versions)
	}
}

// TestJSAcceptsGoLegacyContact: a Go identity publishes only its legacy V1
// contact bundle; xmtp-js verifies its signatures, converts it and starts a
// V2 conversation (with a conversation id, as xmtp-js requires for legacy
// contacts) that Go opens.
func TestJSAcceptsGoLegacyContact(t *testing.T) {
	n := startNode(t)
	ctx := testkit.Context(t, 90*time.Second)
	conn, err := api.Dial(ctx, n.GRPCAddr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	b, err := keys.Generate()
	if err != nil {
		t.Fatal(err)
	}
	envs, err := b.ContactEnvelopes(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := conn.Publish(ctx, keys.NewAuthorizer(b), envs[0]); err != nil {
		t.Fatalf("publish legacy contact: %v", err)
	}
	g, err := client.New(client.Config{Bundle: b, API: conn})
	if err != nil {
		t.Fatal(err)
	}
	inbound, err := g.Inbound(ctx)
	if err != nil {
		t.Fatal(err)
	}
	js := startJS(t, ctx, "start", apiURL(n), g.Address(), "legacy-contact", "hello legacy", "reply legacy")
	js.expect(ctx, "ready")
	js.expect(ctx, "sent")
	var m *conversation.Message
	select {
	case m = <-inbound:
	case <-ctx.Done():
		t.Fatalf("Go never received the xmtp-js message\nstderr:\n%s", js.stderr.String())
	}
	if text, _ := m.Content.Text(); text != "hello legacy" {
		t.Fatalf("Go decrypted %q", text)
	}
	if _, err := g.Reply(ctx, m.Topic, content.Text("reply legacy")); err != nil {
		t.Fatal(err)
	}
	if r := js.expect(ctx, "reply"); r.Text != "reply legacy" {
		t.Fatalf("xmtp-js read %+v", r)
	}
	js.wait(ctx)
}

func sum(m map[string]uint64) uint64 {
	var s uint64
	for _, v := range m {
		s += v
	}
	return s
}
