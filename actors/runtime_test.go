package actors

import (
	"context"
	"errors"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/xmtpbridge/bridge/actors/webhook/webhooktest"
	"github.com/xmtpbridge/bridge/persistence"
	"github.com/xmtpbridge/bridge/xmtp/content"
)

// TestActivateDeactivate: Deactivate stops the identity and releases its
// lease; Activate brings it back; a send as an unknown bridge fails.
func TestActivateDeactivate(t *testing.T) {
	e := newEnv(t)
	tg := webhooktest.NewTarget(t, persistence.FormatJSON)
	b, _ := e.bridge(tg.URL, persistence.FormatJSON, nil)
	rt, reg := e.runtime("n1", nil)
	ctx := context.Background()
	if got := counterValue(t, reg, "bridge_actor_hosted_identities", nil); got != 1 {
		t.Fatalf("hosted = %v, want 1", got)
	}
	if err := rt.Deactivate(ctx, b.ID); err != nil {
		t.Fatalf("deactivate: %v", err)
	}
	if _, ok := rt.Status(b.ID); ok {
		t.Fatal("still hosted after deactivate")
	}
	if l, err := e.store.LeaseOf(ctx, b.ID); err != nil || l.ExpiresAt.After(time.Now()) {
		t.Fatalf("lease after deactivate: want released (expired), got %+v %v", l, err)
	}
	if got := counterValue(t, reg, "bridge_actor_hosted_identities", nil); got != 0 {
		t.Fatalf("hosted = %v, want 0", got)
	}
	if err := rt.Activate(ctx, b.ID); err != nil {
		t.Fatalf("activate: %v", err)
	}
	st, ok := rt.Status(b.ID)
	if !ok || st.Address != b.Address || st.Node != "n1" {
		t.Fatalf("status = %+v, %v", st, ok)
	}
	// The node's own counters follow the identity's two activations and
	// its stop (the grain's Stopped may come a moment after Deactivate
	// returns); protoactor's own metrics stay off.
	want := map[string]float64{"bridge_actor_spawns_total": 2, "bridge_actor_stops_total": 1}
	got := map[string]float64{}
	for deadline := time.Now().Add(2 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		for name := range want {
			got[name] = counterValue(t, reg, name, map[string]string{"actor": "identity"})
		}
		if maps.Equal(got, want) || time.Now().After(deadline) {
			break
		}
	}
	if !maps.Equal(got, want) {
		t.Errorf("actor counters {actor=identity} = %v, want %v", got, want)
	}
	if _, err := rt.Send(ctx, "01a20000-0000-7000-8000-000000000000", b.Address, content.Text("x")); !errors.Is(err, persistence.ErrNotFound) {
		t.Fatalf("send as an unknown bridge: %v, want ErrNotFound", err)
	}
	if err := rt.Activate(ctx, "01a20000-0000-7000-8000-000000000000"); !errors.Is(err, persistence.ErrNotFound) {
		t.Fatalf("activate an unknown bridge: %v, want ErrNotFound", err)
	}
	// A message to an actor that does not exist is a dead letter.
	undelivered := counterValue(t, reg, "bridge_actor_undelivered_messages_total", nil)
	rt.root.Send(actor.NewPID(rt.system.Address(), "no-such-actor"), &sweepTick{})
	if got := counterValue(t, reg, "bridge_actor_undelivered_messages_total", nil); got != undelivered+1 {
		t.Errorf("bridge_actor_undelivered_messages_total = %v after a dead letter, want %v", got, undelivered+1)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if strings.HasPrefix(mf.GetName(), "protoactor_") {
			t.Errorf("protoactor's own metric %s is registered", mf.GetName())
		}
	}
}
