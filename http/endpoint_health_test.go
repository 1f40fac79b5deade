package http

import (
	"context"
	"testing"
	"time"

	"github.com/xmtpbridge/bridge/persistence"
)

// TestGetBridgeShowsEndpointHealth: GET /v1/bridges/{id} carries the
// endpoint's health as the store keeps it, healthy for a new bridge, and
// another account cannot read it.
func TestGetBridgeShowsEndpointHealth(t *testing.T) {
	h := newHarness(t, nil)
	key := h.signup("alice")
	b, _ := h.createBridge(key)
	id := str(b, "id")
	got := h.expect("GET", "/v1/bridges/"+id, key, nil, 200, "")
	eh, _ := got["endpointHealth"].(map[string]any)
	if eh["state"] != "healthy" || eh["failureStreak"] != float64(0) || eh["nextProbeAt"] != nil || eh["lastSuccessAt"] != nil {
		t.Fatalf("endpointHealth of a new bridge = %v", eh)
	}
	ctx := context.Background()
	for range 3 {
		if _, _, err := h.store.RecordEndpointOutcome(ctx, id, false, persistence.BreakerRules{OpenAfter: 3, ProbeMin: time.Minute}); err != nil {
			t.Fatal(err)
		}
	}
	got = h.expect("GET", "/v1/bridges/"+id, key, nil, 200, "")
	eh, _ = got["endpointHealth"].(map[string]any)
	next, err := time.Parse(time.RFC3339Nano, str(eh, "nextProbeAt"))
	if eh["state"] != "open" || eh["failureStreak"] != float64(3) || err != nil || time.Until(next) < 30*time.Second ||
		str(eh, "openedAt") == "" || str(eh, "lastFailureAt") == "" {
		t.Fatalf("endpointHealth of an open endpoint = %v (next probe: %v)", eh, err)
	}
	bob := h.signup("bob")
	h.expect("GET", "/v1/bridges/"+id, bob, nil, 404, CodeNotFound)
}
