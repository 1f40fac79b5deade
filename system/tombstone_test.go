package system

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/xmtpbridge/bridge/internal/testkit"
	"github.com/xmtpbridge/bridge/persistence/pgtest"
	"github.com/xmtpbridge/bridge/system/config"
	"github.com/xmtpbridge/bridge/xmtp/api"
	"github.com/xmtpbridge/bridge/xmtp/client"
	"github.com/xmtpbridge/bridge/xmtp/keys"
)

// TestDeletedBridgeAnswersOncePerConversation deletes a bridge that a
// sender talks to and checks, with the project's XMTP client against the
// local XMTP node, that the address then answers the configured line once
// in the existing conversation however often the sender writes, once in a
// conversation a new sender opens, and that the tombstone's keys are
// erased once it expires.
func TestDeletedBridgeAnswersOncePerConversation(t *testing.T) {
	const line = "This address no longer takes messages (tombstone test)."
	url := pgtest.NewDatabase(t, template)
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("content-type", "application/json")
		fmt.Fprint(w, `{"reply":"alive"}`)
	}))
	defer target.Close()
	cfg := loadConfig(t, config.ModeDev, config.EnvDatabaseURL, url, config.EnvCanaryInterval, "0",
		config.EnvReconcileInterval, "300ms", config.EnvTombstoneMessage, line)
	var logs testkit.Buffer
	n := startNode(t, cfg, &logs)
	base := "http://" + n.HTTPAddr()
	ctx := context.Background()

	var acct struct {
		APIKey string `json:"apiKey"`
	}
	if err := callAPI("POST", base+"/v1/accounts", "", map[string]string{"name": "tomb", "signupKey": testSignup}, &acct); err != nil {
		t.Fatal(err)
	}
	var created struct {
		Bridge struct {
			ID      string `json:"id"`
			Address string `json:"address"`
		} `json:"bridge"`
	}
	if err := callAPI("POST", base+"/v1/bridges", acct.APIKey, map[string]any{"name": "doomed",
		"forward": map[string]string{"url": target.URL, "bodyFormat": "json", "replyMode": "reply"}}, &created); err != nil {
		t.Fatal(err)
	}
	addr := created.Bridge.Address
	xc, err := api.Dial(ctx, n.XMTPAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer xc.Close()
	newSender := func() *client.Client {
		bundle, err := keys.Generate()
		if err != nil {
			t.Fatal(err)
		}
		c, err := client.New(client.Config{Bundle: bundle, API: xc})
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Start(ctx); err != nil {
			t.Fatal(err)
		}
		return c
	}
	// texts returns what the bridge's address said in the conversation.
	texts := func(c *client.Client, topic string) []string {
		msgs, err := c.Messages(ctx, topic)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, m := range msgs {
			if strings.EqualFold(m.Sender, addr) {
				text, _ := m.Content.Text()
				out = append(out, text)
			}
		}
		return out
	}
	alice := newSender()
	waitLong(t, "the bridge's contact", func() error { _, err := alice.Contact(ctx, addr); return err })
	sent, err := alice.SendText(ctx, addr, "are you there?")
	if err != nil {
		t.Fatal(err)
	}
	waitLong(t, "the live bridge's reply", func() error {
		if got := texts(alice, sent.Topic); len(got) != 1 || got[0] != "alive" {
			return fmt.Errorf("replies %q", got)
		}
		return nil
	})

	var deleted map[string]any
	if err := callAPI("DELETE", base+"/v1/bridges/"+created.Bridge.ID, acct.APIKey, nil, &deleted); err != nil {
		t.Fatalf("delete: %v", err)
	}
	for _, text := range []string{"hello?", "anyone?", "last try"} {
		if _, err := alice.SendText(ctx, addr, text); err != nil {
			t.Fatal(err)
		}
	}
	waitLong(t, "the tombstone line in alice's conversation", func() error {
		if got := texts(alice, sent.Topic); len(got) != 2 || got[1] != line {
			return fmt.Errorf("replies %q", got)
		}
		return nil
	})
	// A new sender's new conversation gets the line too, once.
	bob := newSender()
	bobSent, err := bob.SendText(ctx, addr, "hi, new here")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bob.SendText(ctx, addr, "hello again"); err != nil {
		t.Fatal(err)
	}
	waitLong(t, "the tombstone line in bob's conversation", func() error {
		if got := texts(bob, bobSent.Topic); len(got) != 1 || got[0] != line {
			return fmt.Errorf("replies %q", got)
		}
		return nil
	})
	// Bob's message was handled after alice's three: alice still has the
	// line once, and so does bob after his second message.
	if got := texts(alice, sent.Topic); len(got) != 2 {
		t.Fatalf("alice's conversation: %q, want the reply and the line once", got)
	}
	db, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close(ctx)
	var replies int
	if err := db.QueryRow(ctx, `SELECT count(*) FROM tombstone_replies`).Scan(&replies); err != nil || replies != 2 {
		t.Fatalf("%d tombstone replies (%v), want 2", replies, err)
	}
	if got := texts(bob, bobSent.Topic); len(got) != 1 {
		t.Fatalf("bob's conversation: %q", got)
	}

	// Expired: the next refresh deletes the tombstone and with it the keys.
	if _, err := db.Exec(ctx, `UPDATE bridge_tombstones SET expires_at = now() - interval '1 second'`); err != nil {
		t.Fatal(err)
	}
	waitLong(t, "the tombstone's keys erased", func() error {
		var rows int
		if err := db.QueryRow(ctx, `SELECT (SELECT count(*) FROM bridge_tombstones) + (SELECT count(*) FROM tombstone_conversations)
			+ (SELECT count(*) FROM tombstone_replies)`).Scan(&rows); err != nil || rows != 0 {
			return fmt.Errorf("%d tombstone rows left (%v)", rows, err)
		}
		return nil
	})
	if strings.Contains(logs.String(), "are you there?") || strings.Contains(logs.String(), "last try") {
		t.Fatal("the log holds message content")
	}
}
