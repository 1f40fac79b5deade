package system

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xmtpbridge/bridge/internal/testkit"
	"github.com/xmtpbridge/bridge/persistence/pgtest"
	"github.com/xmtpbridge/bridge/system/config"
	"github.com/xmtpbridge/bridge/xmtp/api"
	"github.com/xmtpbridge/bridge/xmtp/client"
	"github.com/xmtpbridge/bridge/xmtp/keys"
)

// deliveryAnswer is what the test reads of GET …/deliveries/{id}.
type deliveryAnswer struct {
	Delivery struct {
		ID            string  `json:"id"`
		Text          *string `json:"text"`
		Reply         *string `json:"reply"`
		Status        string  `json:"status"`
		NextAttemptAt *string `json:"nextAttemptAt"`
		AttemptLog    []struct {
			Status    *int    `json:"status"`
			LatencyMs float64 `json:"latencyMs"`
			Error     string  `json:"error"`
		} `json:"attemptLog"`
	} `json:"delivery"`
}

// TestFailingEndpointIsRetriedAndShown runs a real dev node against an
// endpoint that answers 400, then 503 with Retry-After: 2, then 200 with a
// reply, and checks the Standard Webhooks behaviour: the 400 is retried,
// the third attempt waits out the Retry-After, the delivery succeeds and
// the owner's API shows the text, the reply and the three attempts with
// their status codes; the log has one line per attempt and no content. A
// second message answered 410 is final at once and disables the bridge.
func TestFailingEndpointIsRetriedAndShown(t *testing.T) {
	const message, gone = "retry-me-please-4242", "gone-message-1717"
	url := pgtest.NewDatabase(t, template)
	var (
		mu    sync.Mutex
		times []time.Time
	)
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if bytes.Contains(body, []byte(gone)) {
			http.Error(w, "gone", http.StatusGone)
			return
		}
		mu.Lock()
		times = append(times, time.Now())
		n := len(times)
		mu.Unlock()
		switch n {
		case 1:
			http.Error(w, "not yet", http.StatusBadRequest)
		case 2:
			w.Header().Set("Retry-After", "2")
			http.Error(w, "busy", http.StatusServiceUnavailable)
		default:
			w.Header().Set("content-type", "application/json")
			fmt.Fprint(w, `{"reply":"done at last"}`)
		}
	}))
	defer target.Close()
	cfg := loadConfig(t, config.ModeDev, config.EnvDatabaseURL, url, config.EnvCanaryInterval, "0")
	var logs testkit.Buffer
	n := startNode(t, cfg, &logs)
	base := "http://" + n.HTTPAddr()
	ctx := context.Background()

	var acct struct {
		APIKey string `json:"apiKey"`
	}
	if err := callAPI("POST", base+"/v1/accounts", "", map[string]string{"name": "retries", "signupKey": testSignup}, &acct); err != nil {
		t.Fatalf("create account: %v", err)
	}
	var created struct {
		Bridge struct {
			ID      string `json:"id"`
			Address string `json:"address"`
		} `json:"bridge"`
	}
	if err := callAPI("POST", base+"/v1/bridges", acct.APIKey, map[string]any{"name": "retried",
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
	waitLong(t, "the bridge's contact", func() error {
		_, err := sender.Contact(ctx, created.Bridge.Address)
		return err
	})
	if _, err := sender.SendText(ctx, created.Bridge.Address, message); err != nil {
		t.Fatalf("send: %v", err)
	}

	listURL := base + "/v1/bridges/" + created.Bridge.ID + "/deliveries"
	var list deliveriesAnswer
	waitLong(t, "the delivery succeeded", func() error {
		if err := callAPI("GET", listURL+"?status=succeeded", acct.APIKey, nil, &list); err != nil {
			return err
		}
		if len(list.Deliveries) != 1 {
			return fmt.Errorf("%d succeeded deliveries", len(list.Deliveries))
		}
		return nil
	})
	var one deliveryAnswer
	if err := callAPI("GET", listURL+"/"+list.Deliveries[0].ID, acct.APIKey, nil, &one); err != nil {
		t.Fatal(err)
	}
	d := one.Delivery
	if d.Text == nil || *d.Text != message || d.Reply == nil || *d.Reply != "done at last" || d.NextAttemptAt != nil {
		t.Fatalf("delivery: %+v", d)
	}
	var codes []int
	for _, a := range d.AttemptLog {
		if a.Status == nil {
			t.Fatalf("an attempt without status: %+v", d.AttemptLog)
		}
		codes = append(codes, *a.Status)
	}
	if fmt.Sprint(codes) != "[400 503 200]" {
		t.Fatalf("attempt statuses %v, want [400 503 200]", codes)
	}
	mu.Lock()
	wait := times[2].Sub(times[1])
	mu.Unlock()
	if wait < 1900*time.Millisecond {
		t.Fatalf("the attempt after Retry-After: 2 came %v later", wait)
	}

	// 410: final at once, and the bridge stops forwarding.
	if _, err := sender.SendText(ctx, created.Bridge.Address, gone); err != nil {
		t.Fatalf("send: %v", err)
	}
	waitLong(t, "the bridge disabled by 410", func() error {
		var b struct {
			Bridge struct {
				Status string `json:"status"`
			} `json:"bridge"`
		}
		if err := callAPI("GET", base+"/v1/bridges/"+created.Bridge.ID, acct.APIKey, nil, &b); err != nil {
			return err
		}
		if b.Bridge.Status != "endpoint_gone" {
			return fmt.Errorf("bridge status %q", b.Bridge.Status)
		}
		return nil
	})
	// The bridge's status and the delivery's dead letter are two writes,
	// the dead letter first: whoever sees the status finds the delivery
	// that caused it.
	var dead deliveriesAnswer
	if err := callAPI("GET", listURL+"?status=dead", acct.APIKey, nil, &dead); err != nil {
		t.Fatal(err)
	}
	if len(dead.Deliveries) != 1 {
		t.Fatalf("the bridge shows endpoint_gone with %d dead deliveries, want the 410 one", len(dead.Deliveries))
	}

	// One log line per attempt (three, then one for the 410), each with
	// its status and outcome, and no content anywhere in the log.
	var attempts []map[string]any
	for _, line := range strings.Split(logs.String(), "\n") {
		var rec map[string]any
		if json.Unmarshal([]byte(line), &rec) == nil && rec["msg"] == "webhook attempt" {
			attempts = append(attempts, rec)
		}
	}
	if len(attempts) != 4 {
		t.Fatalf("%d attempt log lines, want 4:\n%s", len(attempts), logs.String())
	}
	for i, want := range []float64{400, 503, 200, 410} {
		a := attempts[i]
		if a["status"] != want || a["attempt"] == nil || a["outcome"] == "" || a["latency_ms"] == nil || a["bridge"] != created.Bridge.ID {
			t.Fatalf("attempt line %d: %v", i, a)
		}
	}
	if strings.Contains(logs.String(), message) || strings.Contains(logs.String(), gone) || strings.Contains(logs.String(), "done at last") {
		t.Fatal("the log holds message content")
	}
}

// waitLong polls cond for up to two minutes: the machine may be loaded.
func waitLong(t *testing.T, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	var err error
	for time.Now().Before(deadline) {
		if err = cond(); err == nil {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s: %v", what, err)
}
