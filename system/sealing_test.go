package system

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/xmtpbridge/bridge/internal/testkit"
	"github.com/xmtpbridge/bridge/persistence/pgtest"
	"github.com/xmtpbridge/bridge/system/config"
	"github.com/xmtpbridge/bridge/xmtp/api"
	"github.com/xmtpbridge/bridge/xmtp/client"
	"github.com/xmtpbridge/bridge/xmtp/keys"
)

// callAPI sends a JSON request to the node's API and decodes the answer
// into out.
func callAPI(method, url, token string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		return err
	}
	req.Header.Set("content-type", "application/json")
	if token != "" {
		req.Header.Set("authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		return &statusError{code: resp.StatusCode, body: string(raw)}
	}
	return json.Unmarshal(raw, out)
}

// dumpTables returns every byte of the tables that hold message content,
// as a dump of the database would show them, in text and binary form.
func dumpTables(ctx context.Context, t *testing.T, db *pgx.Conn) []byte {
	t.Helper()
	var all []byte
	for _, q := range []string{`SELECT d::text FROM deliveries d`, `SELECT payload FROM deliveries`,
		`SELECT o::text FROM reply_outbox o`, `SELECT envelope FROM reply_outbox`,
		`SELECT q::text FROM quarantined_messages q`, `SELECT envelope FROM quarantined_messages`,
		`SELECT a::text FROM delivery_attempts a`} {
		rows, err := db.Query(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var b []byte
			if err := rows.Scan(&b); err != nil {
				t.Fatal(err)
			}
			all = append(all, b...)
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
	}
	return all
}

type deliveriesAnswer struct {
	Deliveries []struct {
		ID      string `json:"id"`
		Payload string `json:"payload"`
		Status  string `json:"status"`
	} `json:"deliveries"`
}

// TestMessageContentIsSealedAndPurged sends a message through a real dev
// node (XMTP client → local XMTP node → bridge identity → webhook → reply
// published) and checks that the database holds neither the message nor
// the reply in clear while the API shows the delivery's content, and that
// the node's retention sweep erases the content of a delivery past
// BRIDGE_PAYLOAD_RETENTION and keeps its record and status.
func TestMessageContentIsSealedAndPurged(t *testing.T) {
	const message, replyText = "the-secret-message-4711", "the-secret-reply-0815"
	url := pgtest.NewDatabase(t, template)
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if !bytes.Contains(body, []byte(message)) {
			http.Error(w, "not the message", http.StatusBadRequest)
			return
		}
		w.Header().Set("content-type", "application/json")
		fmt.Fprintf(w, `{"reply":%q}`, replyText)
	}))
	defer target.Close()
	cfg := loadConfig(t, config.ModeDev, config.EnvDatabaseURL, url, config.EnvCanaryInterval, "0",
		config.EnvRetentionInterval, "200ms")
	var logs testkit.Buffer
	n := startNode(t, cfg, &logs)
	base := "http://" + n.HTTPAddr()
	ctx := context.Background()

	var acct struct {
		APIKey string `json:"apiKey"`
	}
	if err := callAPI("POST", base+"/v1/accounts", "", map[string]string{"name": "sealing", "signupKey": testSignup}, &acct); err != nil {
		t.Fatalf("create account: %v", err)
	}
	var created struct {
		Bridge struct {
			ID      string `json:"id"`
			Address string `json:"address"`
		} `json:"bridge"`
	}
	if err := callAPI("POST", base+"/v1/bridges", acct.APIKey, map[string]any{"name": "sealed",
		"forward": map[string]string{"url": target.URL, "bodyFormat": "json", "replyMode": "reply"}}, &created); err != nil {
		t.Fatalf("create bridge: %v", err)
	}

	xc, err := api.Dial(ctx, n.XMTPAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer xc.Close()
	bundle, err := keys.Generate()
	if err != nil {
		t.Fatal(err)
	}
	sender, err := client.New(client.Config{Bundle: bundle, API: xc})
	if err != nil {
		t.Fatal(err)
	}
	if err := sender.Start(ctx); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 20*time.Second, func() error {
		_, err := sender.Contact(ctx, created.Bridge.Address)
		return err
	}, "the bridge's contact")
	if _, err := sender.SendText(ctx, created.Bridge.Address, message); err != nil {
		t.Fatalf("send: %v", err)
	}

	db, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close(ctx)
	testkit.WaitFor(t, 20*time.Second, func() error {
		var sent int
		if err := db.QueryRow(ctx, `SELECT count(*) FROM reply_outbox WHERE status = 'sent'`).Scan(&sent); err != nil || sent != 1 {
			return fmt.Errorf("%d sent replies (%v)", sent, err)
		}
		return nil
	}, "the reply published")
	listURL := base + "/v1/bridges/" + created.Bridge.ID + "/deliveries"
	var list deliveriesAnswer
	if err := callAPI("GET", listURL, acct.APIKey, nil, &list); err != nil {
		t.Fatal(err)
	}
	if len(list.Deliveries) != 1 || list.Deliveries[0].Status != "succeeded" {
		t.Fatalf("deliveries: %+v", list)
	}
	shown, err := base64.StdEncoding.DecodeString(list.Deliveries[0].Payload)
	if err != nil || !bytes.Contains(shown, []byte(message)) {
		t.Fatalf("the API shows payload %q (%v), want the message's content", shown, err)
	}

	dump := dumpTables(ctx, t, db)
	for _, secret := range []string{message, replyText, base64.StdEncoding.EncodeToString(shown)} {
		if bytes.Contains(dump, []byte(secret)) {
			t.Fatalf("the database holds %q in clear", secret)
		}
	}
	if strings.Contains(logs.String(), message) || strings.Contains(logs.String(), replyText) {
		t.Fatal("the logs hold the message content")
	}

	// Past the retention (the rows are made 31 days old), the sweep erases
	// the content and keeps the record and its status.
	for _, q := range []string{`UPDATE deliveries SET updated_at = now() - interval '31 days'`,
		`UPDATE reply_outbox SET updated_at = now() - interval '31 days'`} {
		if _, err := db.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	testkit.WaitFor(t, 20*time.Second, func() error {
		var list deliveriesAnswer
		if err := callAPI("GET", listURL, acct.APIKey, nil, &list); err != nil {
			return err
		}
		if len(list.Deliveries) != 1 || list.Deliveries[0].Status != "succeeded" {
			t.Fatalf("the delivery record changed: %+v", list)
		}
		if list.Deliveries[0].Payload != "" {
			return errors.New("payload still shown")
		}
		return nil
	}, "the payload purged")
	testkit.WaitFor(t, 20*time.Second, func() error {
		var purged int
		if err := db.QueryRow(ctx, `SELECT count(*) FROM reply_outbox WHERE status = 'sent' AND purged_at IS NOT NULL
			AND length(envelope) = 0`).Scan(&purged); err != nil || purged != 1 {
			return fmt.Errorf("%d purged sent replies (%v), want 1", purged, err)
		}
		return nil
	}, "the reply purged")
	testkit.WaitFor(t, 20*time.Second, func() error {
		_, metrics, err := get(base + "/metrics")
		if err != nil {
			return err
		}
		for _, want := range []string{`bridge_retention_purged_total{kind="delivery"} 1`, `bridge_retention_purged_total{kind="reply"} 1`} {
			if !strings.Contains(metrics, want) {
				return errors.New("metrics lack " + want)
			}
		}
		return nil
	}, "the purge counted")
}
