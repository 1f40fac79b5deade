package actors

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

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
	if _, err := rt.Send(ctx, "01a20000-0000-7000-8000-000000000000", b.Address, content.Text("x")); !errors.Is(err, persistence.ErrNotFound) {
		t.Fatalf("send as an unknown bridge: %v, want ErrNotFound", err)
	}
	if err := rt.Activate(ctx, "01a20000-0000-7000-8000-000000000000"); !errors.Is(err, persistence.ErrNotFound) {
		t.Fatalf("activate an unknown bridge: %v, want ErrNotFound", err)
	}
	// protoactor's own instruments land on the same registry.
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, mf := range mfs {
		names = append(names, mf.GetName())
	}
	if !strings.Contains(strings.Join(names, " "), "protoactor") {
		t.Fatalf("no protoactor metrics among %v", names)
	}
}
