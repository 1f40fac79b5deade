package e2e

import (
	"net/http"
	"testing"
	"time"

	"github.com/xmtpbridge/bridge/actors/webhook/webhooktest"
	"github.com/xmtpbridge/bridge/internal/testkit"
)

// TestBridgeLifecycleFollowsTheAPI checks that the node acts on API calls
// at once rather than at its next reconcile or sweep (both set to an hour
// here): a new bridge is live on this node before the answer, a dead letter
// replayed over REST is delivered at once, disabling and enabling stop and
// start the identity, and deleting the bridge stops it.
func TestBridgeLifecycleFollowsTheAPI(t *testing.T) {
	t.Parallel()
	c := newCluster(t, map[string]string{"BRIDGE_RECONCILE_INTERVAL": "1h", "BRIDGE_SWEEP_INTERVAL": "1h"})
	tg := webhooktest.NewTarget(t, "json")
	tg.SetStatus(func(string) int { return http.StatusBadRequest })
	acct := mustCall(t, 201, "POST", c.api+"/v1/accounts", "", map[string]any{"name": "owner", "signupKey": signupKey})
	key := str(acct, "apiKey")
	created := mustCall(t, 201, "POST", c.api+"/v1/bridges", key, map[string]any{
		// final4xx: the target's 400 is a dead letter at once, not a retry.
		"name": "life", "forward": map[string]any{"url": tg.URL, "retry": "final4xx"},
	})
	tg.SetSecret(str(created, "webhookSecret"))
	id, addr := str(created, "bridge", "id"), str(created, "bridge", "address")
	// The owner sees the live state with its API key; the signup key is
	// no key to a /v1 bridge.
	live := func() string {
		out := mustCall(t, 200, "GET", c.api+"/v1/bridges/"+id, key, nil)
		return str(out, "live", "live")
	}
	mustCall(t, 401, "POST", c.api+"/instance", "", map[string]any{"key": signupKey, "bridgeAddress": addr})
	if got := live(); got != "online" {
		t.Fatalf("a new bridge is %q, want online at once", got)
	}

	b := newBurst(t, c.xmtpGRPC, addr, 1, 1)
	b.start()
	b.wait(time.Minute)
	var dead []any
	testkit.WaitFor(t, time.Minute, func() bool {
		out := mustCall(t, 200, "GET", c.api+"/v1/bridges/"+id+"/dead-letters", key, nil)
		dead, _ = out["deadLetters"].([]any)
		return len(dead) == 1
	}, "the rejected message among the dead letters")
	deliveryID, _ := dead[0].(map[string]any)["id"].(string)
	tg.SetStatus(nil)
	mustCall(t, 200, "POST", c.api+"/v1/bridges/"+id+"/dead-letters/"+deliveryID+"/replay", key, nil)
	testkit.WaitFor(t, 30*time.Second, func() bool { return tg.Has(b.text(0, 0)) }, "the replayed dead letter at the target")

	mustCall(t, 200, "PATCH", c.api+"/v1/bridges/"+id, key, map[string]any{"status": "disabled"})
	if got := live(); got != "offline" {
		t.Fatalf("a disabled bridge is %q, want offline", got)
	}
	mustCall(t, 200, "PATCH", c.api+"/v1/bridges/"+id, key, map[string]any{"status": "active"})
	if got := live(); got != "online" {
		t.Fatalf("a re-enabled bridge is %q, want online", got)
	}
	mustCall(t, 200, "DELETE", c.api+"/v1/bridges/"+id, key, nil)
	testkit.WaitFor(t, 30*time.Second, func() bool {
		lines := metric(t, c.api, "bridge_actor_hosted_identities ")
		return len(lines) == 1 && lines[0] == "bridge_actor_hosted_identities 0"
	}, "no hosted identity after the delete")
}
