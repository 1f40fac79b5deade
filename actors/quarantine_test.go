package actors

import (
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"testing"
	"time"

	messagev1 "github.com/xmtp/proto/v3/go/message_api/v1"

	"github.com/xmtpbridge/bridge/actors/webhook/webhooktest"
	"github.com/xmtpbridge/bridge/internal/testkit"
	"github.com/xmtpbridge/bridge/persistence"
	"github.com/xmtpbridge/bridge/xmtp/keys"
)

func TestLogSamplerLetsOneLinePerWindowThrough(t *testing.T) {
	s := newLogSampler(time.Minute, 100)
	t0 := time.Unix(1_000_000, 0)
	if ok, held := s.allow("b1", "truncated", t0); !ok || held != 0 {
		t.Fatalf("first line: %v %d", ok, held)
	}
	for i := range 50 {
		if ok, _ := s.allow("b1", "truncated", t0.Add(time.Duration(i)*time.Second)); ok {
			t.Fatalf("line %d inside the window was let through", i)
		}
	}
	// Other keys have windows of their own.
	if ok, _ := s.allow("b1", "tampered", t0); !ok {
		t.Fatal("another reason was held back")
	}
	if ok, _ := s.allow("b2", "truncated", t0); !ok {
		t.Fatal("another bridge was held back")
	}
	if ok, held := s.allow("b1", "truncated", t0.Add(time.Minute)); !ok || held != 50 {
		t.Fatalf("first line of the next window: %v, %d held back; want 50", ok, held)
	}
}

// TestLogSamplerMemoryIsBounded: a flood of distinct bridges fills the
// sampler to its bound, after which they share one key per reason, so one
// line per reason and window still gets through.
func TestLogSamplerMemoryIsBounded(t *testing.T) {
	s := newLogSampler(time.Minute, 64)
	t0 := time.Unix(1_000_000, 0)
	lines := 0
	for i := range 10_000 {
		for _, reason := range []string{"truncated", "tampered"} {
			if ok, _ := s.allow(fmt.Sprintf("bridge-%d", i), reason, t0.Add(time.Duration(i)*time.Millisecond)); ok {
				lines++
			}
		}
	}
	if n := len(s.samples); n > 64+2 {
		t.Fatalf("sampler holds %d keys, want at most 66", n)
	}
	if lines != 64+2 {
		t.Fatalf("%d lines let through, want 64 (one per remembered key) + 2 (one per shared reason)", lines)
	}
	// Once the windows pass, the sampler makes room again.
	if ok, _ := s.allow("late", "truncated", t0.Add(time.Hour)); !ok {
		t.Fatal("a line after the windows passed was held back")
	}
	if n := len(s.samples); n > 64+2 {
		t.Fatalf("sampler holds %d keys after pruning", n)
	}
}

// TestJunkOnTheInviteTopicStaysBounded: a stranger's wallet publishes 520
// junk envelopes, 20 of them 1 MiB, on a bridge's invite topic through the
// real local XMTP node. Every one is counted, the bridge's quarantine keeps
// at most its cap of rows of a few kilobytes each, the log gets a handful
// of lines, and the bridge keeps forwarding.
func TestJunkOnTheInviteTopicStaysBounded(t *testing.T) {
	const small, big, maxRows = 500, 20, 100
	e := newEnv(t)
	e.store.SetQuarantineRows(maxRows)
	tg := webhooktest.NewTarget(t, persistence.FormatJSON)
	b, secret := e.bridge(tg.URL, persistence.FormatJSON, nil)
	tg.SetSecret(secret)
	var logs testkit.Buffer
	rt, reg := e.runtime("n1", func(c *Config) {
		c.Logger = slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
	})
	// On a busy machine the start's first placement pass can end before
	// the activation does, and the next pass hosts the bridge: the friend
	// finds its contact once it is hosted.
	testkit.WaitFor(t, 20*time.Second, func() bool { _, ok := rt.Status(b.ID); return ok }, "the bridge hosted")
	ctx := context.Background()
	friend := e.sender()
	if _, err := friend.SendText(ctx, b.Address, "before the junk"); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 20*time.Second, func() bool { return tg.Has("before the junk") }, "the first message")

	attacker, err := keys.Generate()
	if err != nil {
		t.Fatal(err)
	}
	auth := keys.NewAuthorizer(attacker)
	topic := keys.InviteTopic(b.Address)
	junk := func(size int) *messagev1.Envelope {
		msg := make([]byte, size)
		_, _ = rand.Read(msg)
		return &messagev1.Envelope{ContentTopic: topic, TimestampNs: uint64(time.Now().UnixNano()), Message: msg}
	}
	start := time.Now()
	// Batches of 10 stay under the node's limit of envelopes per publish.
	for i := 0; i < small; i += 10 {
		var batch []*messagev1.Envelope
		for j := range 10 {
			batch = append(batch, junk(16+(i+j)*7%4000))
		}
		if err := e.xmtp.Publish(ctx, auth, batch...); err != nil {
			t.Fatalf("publish junk: %v", err)
		}
	}
	for range big {
		if err := e.xmtp.Publish(ctx, auth, junk(1<<20)); err != nil {
			t.Fatalf("publish 1 MiB junk: %v", err)
		}
	}

	testkit.WaitFor(t, 60*time.Second, func() bool {
		return counterValue(t, reg, "bridge_actor_envelopes_rejected_total", nil) >= small+big
	}, "every junk envelope counted")
	if got := counterValue(t, reg, "bridge_actor_envelopes_rejected_total", nil); got != small+big {
		t.Fatalf("bridge_actor_envelopes_rejected_total = %v, want %d", got, small+big)
	}
	elapsed := time.Since(start)

	db := e.store.Pool()
	var rows, stored, longest int
	if err := db.QueryRow(ctx, `SELECT count(*), coalesce(sum(pg_column_size(q.*)), 0), coalesce(max(length(envelope)), 0)
		FROM quarantined_messages q WHERE bridge_id = $1`, b.ID).Scan(&rows, &stored, &longest); err != nil {
		t.Fatal(err)
	}
	// 520 envelopes, about 21 MiB, arrived; at most maxRows rows of at
	// most 256 input bytes stay, well under 1 KiB each with their reason
	// and topic.
	const bound = maxRows * 1024
	if rows != maxRows || longest > persistence.QuarantinePrefixBytes || stored > bound {
		t.Fatalf("quarantine of the bridge: %d rows, %d bytes, longest input %d bytes; want %d rows, at most %d bytes",
			rows, stored, longest, maxRows, bound)
	}

	// One line per reason and minute, whatever the number of envelopes.
	lines := logs.Records("rejected envelope")
	reasons := map[string]bool{}
	for _, l := range lines {
		reasons[fmt.Sprint(l["reason"])] = true
	}
	if limit := len(reasons) * (1 + int(elapsed/quarantineLogWindow)); len(lines) == 0 || len(lines) > limit {
		t.Fatalf("%d log lines for %d rejected envelopes with %d reasons in %s; want 1 to %d",
			len(lines), small+big, len(reasons), elapsed, limit)
	}

	t.Logf("%d envelopes in %s: %d quarantine rows, %d bytes stored, %d log lines for %d reasons",
		small+big, elapsed.Round(time.Millisecond), rows, stored, len(lines), len(reasons))

	if _, err := friend.SendText(ctx, b.Address, "after the junk"); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 20*time.Second, func() bool { return tg.Has("after the junk") }, "a message after the junk")
}
