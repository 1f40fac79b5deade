package system

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/jackc/pgx/v5"

	"github.com/xmtpbridge/bridge/internal/testkit"
	"github.com/xmtpbridge/bridge/persistence/pgtest"
	"github.com/xmtpbridge/bridge/system/config"
	"github.com/xmtpbridge/bridge/xmtp/api"
	"github.com/xmtpbridge/bridge/xmtp/client"
	"github.com/xmtpbridge/bridge/xmtp/keys"
)

// metricValue reads one sample of the node's /metrics, by its full name
// with labels; -1 when absent.
func metricValue(t testing.TB, base, sample string) float64 {
	t.Helper()
	_, body, err := get(base + "/metrics")
	if err != nil {
		return -1
	}
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(sample) + ` (\S+)$`).FindStringSubmatch(body)
	if m == nil {
		return -1
	}
	v, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		return -1
	}
	return v
}

// A live bridge's message that no consumer acknowledges shows in the four
// live metrics (consumers, stored messages, age of the oldest, lag) and,
// past BRIDGE_LIVE_RETENTION, is counted as expired and becomes a dead
// letter of the bridge that the owner can list: never dropped silently.
func TestLiveMetricsAndExpiredMessagesBecomeDeadLetters(t *testing.T) {
	url := pgtest.NewDatabase(t, template)
	cfg := loadConfig(t, config.ModeDev, config.EnvDatabaseURL, url, config.EnvCanaryInterval, "0",
		config.EnvRetentionInterval, "200ms", config.EnvLiveRetention, "1h", config.EnvLiveClaimTTL, "3s")
	var logs testkit.Buffer
	n := startNode(t, cfg, &logs)
	base := "http://" + n.HTTPAddr()
	ctx := context.Background()

	var acct struct {
		APIKey string `json:"apiKey"`
	}
	if err := callAPI("POST", base+"/v1/accounts", "", map[string]string{"name": "live", "signupKey": testSignup}, &acct); err != nil {
		t.Fatalf("create account: %v", err)
	}
	var created struct {
		Bridge struct {
			ID      string `json:"id"`
			Address string `json:"address"`
		} `json:"bridge"`
	}
	if err := callAPI("POST", base+"/v1/bridges", acct.APIKey, map[string]any{"name": "live", "delivery": "live",
		"forward": map[string]string{"url": "http://127.0.0.1:9/unused"}}, &created); err != nil {
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
	if _, err := sender.SendText(ctx, created.Bridge.Address, "nobody acknowledges this"); err != nil {
		t.Fatalf("send: %v", err)
	}

	// Stored with no consumer: one message waits, and its age grows.
	testkit.WaitFor(t, 30*time.Second, func() bool {
		return metricValue(t, base, "bridge_live_stored_messages") == 1 && metricValue(t, base, "bridge_live_oldest_unacked_seconds") > 0
	}, "one stored live message with an age")

	// A consumer gets it (the lag is observed) and leaves without an ack.
	h := http.Header{}
	h.Set("Authorization", "Bearer "+acct.APIKey)
	dctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	conn, _, err := websocket.Dial(dctx, "ws://"+n.HTTPAddr()+"/v1/bridges/"+created.Bridge.ID+"/live", &websocket.DialOptions{HTTPHeader: h})
	cancel()
	if err != nil {
		t.Fatalf("dial live: %v", err)
	}
	testkit.WaitFor(t, 10*time.Second, func() bool { return metricValue(t, base, "bridge_live_consumers") == 1 }, "one consumer")
	rctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	_, frame, err := conn.Read(rctx)
	cancel()
	if err != nil || !strings.Contains(string(frame), "nobody acknowledges this") {
		t.Fatalf("the consumer read %q, %v", frame, err)
	}
	if lag := metricValue(t, base, "bridge_live_lag_seconds_count"); lag != 1 {
		t.Fatalf("bridge_live_lag_seconds_count %v after one message sent, want 1", lag)
	}
	conn.Close(websocket.StatusNormalClosure, "bye")
	testkit.WaitFor(t, 10*time.Second, func() bool { return metricValue(t, base, "bridge_live_consumers") == 0 }, "no consumer")

	// Past the retention (the row is made two hours old) it expires: it
	// is counted, leaves the store and is a dead letter with its reason.
	db, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close(ctx)
	if _, err := db.Exec(ctx, `UPDATE live_messages SET created_at = now() - interval '2 hours'`); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 20*time.Second, func() bool {
		return metricValue(t, base, "bridge_live_expired_total") == 1 && metricValue(t, base, "bridge_live_stored_messages") == 0
	}, "the message expired and counted")
	var dead struct {
		DeadLetters []map[string]any `json:"deadLetters"`
	}
	if err := callAPI("GET", base+"/v1/bridges/"+created.Bridge.ID+"/dead-letters", acct.APIKey, nil, &dead); err != nil {
		t.Fatal(err)
	}
	if len(dead.DeadLetters) != 1 || !strings.Contains(fmt.Sprint(dead.DeadLetters[0]["lastError"]), "BRIDGE_LIVE_RETENTION") {
		raw, _ := json.Marshal(dead)
		t.Fatalf("dead letters %s, want the expired live message with its reason", raw)
	}
	if strings.Contains(logs.String(), "nobody acknowledges this") {
		t.Fatal("the logs hold the message content")
	}
}
