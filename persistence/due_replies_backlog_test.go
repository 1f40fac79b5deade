package persistence

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// rankedDueRepliesQuery is the page DueReplies is to return, as a ranking
// of every due reply of the bridge, the way dueRepliesQuery read it before
// it walked the conversations in rounds: the reference for
// TestDueRepliesMatchTheRanking, and what BenchmarkDueRepliesBacklog
// measures it against. waiting is, per conversation, its oldest reply to a
// message that waits for a retry; n numbers the due replies of each
// conversation to its messages in message order, and the other replies of
// each conversation by id.
const rankedDueRepliesQuery = `WITH waiting AS (
		SELECT o.topic, min(o.delivery_id) AS first FROM reply_outbox o
		WHERE o.bridge_id = $1 AND o.status IN ('pending', 'failed') AND o.next_attempt_at > now() AND o.delivery_id IS NOT NULL
		GROUP BY o.topic),
	due AS (
		SELECT r.id, r.delivery_id,
			row_number() OVER (PARTITION BY r.topic, r.delivery_id IS NULL ORDER BY r.delivery_id, r.id) AS n
		FROM reply_outbox r LEFT JOIN waiting w ON w.topic = r.topic
		WHERE r.bridge_id = $1 AND r.status IN ('pending', 'failed') AND r.next_attempt_at <= now()
			AND (w.first IS NULL OR r.delivery_id IS NULL OR r.delivery_id < w.first))
	SELECT id FROM due ORDER BY n, delivery_id NULLS LAST, id LIMIT $2`

// fillOutbox writes n replies of the bridge straight into reply_outbox:
// replies to messages (delivery ids 1..n/conversations per conversation,
// in message order), over conversations topics, all pending and due. The
// outbox has no foreign keys to check (migration 0014).
func fillOutbox(t testing.TB, s *Store, bridgeID string, n, conversations int) {
	t.Helper()
	if _, err := s.pool.Exec(context.Background(), `
		INSERT INTO reply_outbox (bridge_id, delivery_id, topic, timestamp_ns, envelope, status, next_attempt_at)
		SELECT $1, 1000000 + g, '/xmtp/0/m-backlog-' || (g % $3) || '/proto', g, convert_to(repeat('e', 200), 'UTF8'),
			'pending', now() - interval '1 minute'
		FROM generate_series(1, $2::int) g`, bridgeID, n, conversations); err != nil {
		t.Fatal(err)
	}
}

// TestDueRepliesMatchTheRanking: on outboxes of every shape (replies to
// messages and others, several per message, pending, failed, due or
// waiting for a retry, sent, dead, another bridge's), each page DueReplies
// returns is the one the ranking of every due reply gives: a
// conversation's replies in message order, stopped at the first that
// waits with every reply behind it, and the first of every conversation
// before the second of any.
func TestDueRepliesMatchTheRanking(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, a, b, _ := leasedBridge(t, "n1")
	other, _ := newBridge(t, s, a.ID, []byte("bundle-other"))
	rng := rand.New(rand.NewPCG(12, 16))
	for round := range 16 {
		if _, err := s.pool.Exec(ctx, `DELETE FROM reply_outbox`); err != nil {
			t.Fatal(err)
		}
		n := []int{20, 150, 900, 3000}[round%4]
		batch := &pgx.Batch{}
		for range n {
			bridge := b.ID
			if rng.IntN(10) == 0 {
				bridge = other.ID
			}
			var delivery *int64
			if rng.IntN(10) < 7 {
				d := int64(rng.IntN(n/2) + 1) // several replies to some messages
				delivery = &d
			}
			status := []string{"pending", "pending", "failed", "sent", "dead"}[rng.IntN(5)]
			next := time.Now().Add(-time.Hour)
			if rng.IntN(100) < 12 {
				next = time.Now().Add(time.Hour)
			}
			batch.Queue(`INSERT INTO reply_outbox (bridge_id, delivery_id, topic, timestamp_ns, envelope, status, next_attempt_at)
				VALUES ($1, $2, $3, 1, '\x00'::bytea, $4, $5)`, bridge, delivery, fmt.Sprintf("/xmtp/0/m-%d/proto", rng.IntN(6)), status, next)
		}
		if err := s.pool.SendBatch(ctx, batch).Close(); err != nil {
			t.Fatal(err)
		}
		for _, limit := range []int{1, 2, 5, 17, 100, 200} {
			// DueReplies takes at most a page's most (Page).
			rows, err := s.pool.Query(ctx, rankedDueRepliesQuery, b.ID, Page{Limit: limit}.limit())
			if err != nil {
				t.Fatal(err)
			}
			want, err := pgx.CollectRows(rows, pgx.RowTo[int64])
			if err != nil {
				t.Fatal(err)
			}
			due, err := s.DueReplies(ctx, b.ID, limit)
			if err != nil {
				t.Fatal(err)
			}
			got := make([]int64, 0, len(due))
			for _, r := range due {
				got = append(got, r.ID)
			}
			if !slices.Equal(got, want) {
				t.Fatalf("round %d (%d replies), limit %d: DueReplies %v, the ranking %v", round, n, limit, got, want)
			}
		}
	}
}

// TestDueRepliesReadAPageNotTheBacklog: a page of due replies reads about
// the rows of the page, whether the bridge's backlog holds a few hundred
// replies or twenty thousand (a backlog builds while the XMTP node is out
// of reach): Postgres counts the rows each read of reply_outbox returned
// (pg_stat_user_tables and pg_stat_user_indexes). Ranking the whole
// backlog read every due reply for each page, so draining it cost the
// square of its size.
func TestDueRepliesReadAPageNotTheBacklog(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	_, url := newTestStore(t)
	s := oneConnStore(t, url)
	a, _ := newAccount(t, s, "alice")
	const page, conversations = 200, 20
	read := func() int64 {
		t.Helper()
		// The one connection flushes its counters when it goes idle
		// after this statement; the next one reads them afresh.
		if _, err := s.pool.Exec(ctx, "SELECT pg_stat_force_next_flush()"); err != nil {
			t.Fatal(err)
		}
		var n int64
		if err := s.pool.QueryRow(ctx, `SELECT
				(SELECT coalesce(seq_tup_read, 0) + coalesce(idx_tup_fetch, 0) FROM pg_stat_user_tables WHERE relname = 'reply_outbox')
				+ (SELECT coalesce(sum(idx_tup_read), 0) FROM pg_stat_user_indexes WHERE relname = 'reply_outbox')`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	cost := func(backlog int) int64 {
		t.Helper()
		b, _ := newBridge(t, s, a.ID, []byte(fmt.Sprintf("bundle-%d", backlog)))
		fillOutbox(t, s, b.ID, backlog, conversations)
		if _, err := s.pool.Exec(ctx, `ANALYZE reply_outbox`); err != nil {
			t.Fatal(err)
		}
		// Past five runs the connection may use a generic plan: measure
		// the plan it keeps.
		for range 6 {
			if _, err := s.DueReplies(ctx, b.ID, page); err != nil {
				t.Fatal(err)
			}
		}
		before := read()
		due, err := s.DueReplies(ctx, b.ID, page)
		if err != nil {
			t.Fatal(err)
		}
		if len(due) != page {
			t.Fatalf("a backlog of %d: a page of %d replies, want %d", backlog, len(due), page)
		}
		return read() - before
	}
	small, large := cost(2*page), cost(20000)
	t.Logf("a page of %d due replies read %d rows of reply_outbox with a backlog of %d, %d with a backlog of 20000", page, small, 2*page, large)
	if large > small+small/2 {
		t.Errorf("a page of %d read %d rows with a backlog of 20000 and %d with one of %d: its cost grows with the backlog", page, large, small, 2*page)
	}
	if large > 8*page {
		t.Errorf("a page of %d read %d rows of reply_outbox, want at most %d", page, large, 8*page)
	}
}

// BenchmarkDueRepliesBacklog measures DueReplies on a bridge whose
// backlog holds 20,000 due replies over 20 conversations: page is one
// read of a page of 200 with the backlog in place; drain reads and marks
// sent page after page until the backlog is out (the sweep's work once
// the XMTP node is back).
func BenchmarkDueRepliesBacklog(b *testing.B) {
	const backlog, page, conversations = 20000, 200, 20
	ctx := context.Background()
	s, _ := newTestStore(b)
	acct, _ := newAccount(b, s, "alice")
	br, _ := newBridge(b, s, acct.ID, []byte("bundle"))
	l, err := s.AcquireLease(ctx, br.ID, "n1", time.Hour)
	if err != nil {
		b.Fatal(err)
	}
	fillOutbox(b, s, br.ID, backlog, conversations)
	if _, err := s.pool.Exec(ctx, `VACUUM ANALYZE reply_outbox`); err != nil {
		b.Fatal(err)
	}
	b.Run("page", func(b *testing.B) {
		for b.Loop() {
			due, err := s.DueReplies(ctx, br.ID, page)
			if err != nil || len(due) != page {
				b.Fatalf("%d due replies, %v", len(due), err)
			}
		}
	})
	b.Run("drain", func(b *testing.B) {
		for b.Loop() {
			b.StopTimer()
			if _, err := s.pool.Exec(ctx, `UPDATE reply_outbox SET status = 'pending', next_attempt_at = now() - interval '1 minute'
				WHERE bridge_id = $1`, br.ID); err != nil {
				b.Fatal(err)
			}
			if _, err := s.pool.Exec(ctx, `VACUUM ANALYZE reply_outbox`); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
			out := 0
			for {
				due, err := s.DueReplies(ctx, br.ID, page)
				if err != nil {
					b.Fatal(err)
				}
				if len(due) == 0 {
					break
				}
				ids := make([]int64, len(due))
				for i, r := range due {
					ids[i] = r.ID
				}
				if err := s.RecordReplyAttempts(ctx, l, ids, ReplySent, "", time.Time{}); err != nil {
					b.Fatal(err)
				}
				out += len(due)
			}
			if out != backlog {
				b.Fatalf("drained %d replies, want %d", out, backlog)
			}
		}
	})
}
