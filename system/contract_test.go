package system

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/xmtpbridge/bridge/internal/testkit"
	"github.com/xmtpbridge/bridge/persistence/pgtest"
	"github.com/xmtpbridge/bridge/system/config"
)

// call sends a JSON request to the node and decodes the JSON answer.
func call(t *testing.T, method, url, token string, body any) (int, map[string]any) {
	t.Helper()
	raw, _ := json.Marshal(body)
	req, err := http.NewRequest(method, url, bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	var m map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
		t.Fatalf("%s %s: answer is not JSON: %v", method, url, err)
	}
	return resp.StatusCode, m
}

// TestRecipientUnknownIsOneStatus sends, through a dev node's real runtime
// and local XMTP node, to an address that is not on the network: the
// answer is 422 recipient_unknown on relaycc /hook as on /v1 (finding 10
// of issue 10: it was 400 on /hook).
func TestRecipientUnknownIsOneStatus(t *testing.T) {
	url := pgtest.NewDatabase(t, template)
	cfg := loadConfig(t, config.ModeDev, config.EnvDatabaseURL, url, config.EnvCanaryInterval, "0")
	n := startNode(t, cfg, &testkit.Buffer{})
	base := "http://" + n.HTTPAddr()
	nobody := "0x000000000000000000000000000000000000dEaD"

	status, signup := call(t, "POST", base+"/signup", "", map[string]any{"key": testSignup, "forwardHandler": map[string]any{"httpUrl": base + "/canary"}})
	if status != 200 {
		t.Fatalf("relaycc signup: %d %v", status, signup)
	}
	status, acct := call(t, "POST", base+"/v1/accounts", "", map[string]any{"name": "owner", "signupKey": testSignup})
	if status != 201 {
		t.Fatalf("account: %d %v", status, acct)
	}
	key := acct["apiKey"].(string)
	status, created := call(t, "POST", base+"/v1/bridges", key, map[string]any{"forward": map[string]any{"url": base + "/canary"}})
	if status != 201 {
		t.Fatalf("bridge: %d %v", status, created)
	}
	id := created["bridge"].(map[string]any)["id"].(string)

	sends := map[string]func() (int, map[string]any){
		"/hook": func() (int, map[string]any) {
			return call(t, "POST", base+"/hook", "", map[string]any{
				"sendFromBridgeAddress": signup["ethAddress"], "targetAddress": nobody, "message": "hi", "token": signup["hookToken"],
			})
		},
		"/v1": func() (int, map[string]any) {
			return call(t, "POST", base+"/v1/bridges/"+id+"/messages", key, map[string]any{"to": nobody, "content": "hi"})
		},
	}
	for name, send := range sends {
		// 503 while the identity is still being activated.
		testkit.WaitFor(t, 20*time.Second, func() error {
			status, m := send()
			if status == 422 && m["code"] == "recipient_unknown" {
				return nil
			}
			if status == 503 {
				return fmt.Errorf("%d %v", status, m)
			}
			t.Fatalf("%s send to an address not on the network: %d %v, want 422 recipient_unknown", name, status, m)
			return nil
		}, "%s to answer 422", name)
	}
}
