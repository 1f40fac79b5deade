package persistence

import (
	"context"
	"fmt"
	"io/fs"
	"maps"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/xmtpbridge/bridge/persistence/pgtest"
)

// countedEndpoints is what EndpointCounts is to return, counted the long
// way: every bridge, and its health row if it has one.
func countedEndpoints(t *testing.T, s *Store) (map[EndpointState]int64, int64) {
	t.Helper()
	ctx := context.Background()
	out := map[EndpointState]int64{EndpointHealthy: 0, EndpointFailing: 0, EndpointOpen: 0, EndpointDisabled: 0}
	rows, err := s.pool.Query(ctx, `SELECT coalesce(h.state, 'healthy'), count(*) FROM bridges b
		LEFT JOIN endpoint_health h ON h.bridge_id = b.id GROUP BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var st EndpointState
		var n int64
		if err := rows.Scan(&st, &n); err != nil {
			t.Fatal(err)
		}
		out[st] = n
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	var backlog int64
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM deliveries d JOIN endpoint_health h ON h.bridge_id = d.bridge_id
		WHERE h.state IN ('open', 'disabled') AND d.status IN ('pending', 'failed')`).Scan(&backlog); err != nil {
		t.Fatal(err)
	}
	return out, backlog
}

// insertBridges writes n bridges of the account straight into bridges, in
// one statement, and returns their ids.
func insertBridges(t *testing.T, s *Store, accountID string, n int) []string {
	t.Helper()
	rows, err := s.pool.Query(context.Background(), `INSERT INTO bridges (id, account_id, address, key_id, key_nonce, key_ciphertext)
		SELECT gen_random_uuid(), $1, '0x' || lpad(to_hex(g), 8, '0') || substr(md5(random()::text), 1, 32), 'k1',
			'\x000000000000000000000000'::bytea, '\x0000000000000000000000000000000000'::bytea
		FROM generate_series(1, $2::int) g RETURNING id::text`, accountID, n)
	if err != nil {
		t.Fatal(err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

// TestEndpointCountsFollowTheBridges: the endpoints EndpointCounts finds
// in each state, and the backlog, are the ones counted bridge by bridge,
// as bridges are created (one by one, many in one statement, from several
// connections at once), their endpoints fail, open, are disabled and reset,
// bridges are deleted (one by one and many at once), a transaction that
// created bridges rolls back, and the table is truncated.
func TestEndpointCountsFollowTheBridges(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _ := newTestStore(t)
	a, _ := newAccount(t, s, "alice")
	check := func(step string) {
		t.Helper()
		got, gotBacklog, err := s.EndpointCounts(ctx)
		if err != nil {
			t.Fatal(err)
		}
		want, wantBacklog := countedEndpoints(t, s)
		if !maps.Equal(got, want) || gotBacklog != wantBacklog {
			t.Fatalf("%s: EndpointCounts %v, backlog %d; counted %v, backlog %d", step, got, gotBacklog, want, wantBacklog)
		}
	}
	check("no bridges")
	var ids []string
	for range 3 {
		b, _ := newBridge(t, s, a.ID, []byte("bundle"))
		ids = append(ids, b.ID)
	}
	check("three bridges created")
	bulk := insertBridges(t, s, a.ID, 500)
	check("500 more in one statement")

	// From several connections at once, each bridge in its own
	// transaction.
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for w := range 8 {
		acct, _ := newAccount(t, s, fmt.Sprintf("writer-%d", w))
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 4 {
				if _, _, err := s.CreateBridge(ctx, NewBridge{AccountID: acct.ID, Address: randomAddress(t), Name: "c",
					KeyBundle: []byte("bundle"), Forward: testForward()}); err != nil {
					errs <- err
				}
			}
			if _, err := s.pool.Exec(ctx, `DELETE FROM bridges WHERE id IN (SELECT id FROM bridges WHERE account_id = $1 LIMIT 1)`, acct.ID); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	check("created and deleted from eight connections at once")

	// Endpoints change state.
	rules := BreakerRules{OpenAfter: 2, ProbeMin: time.Minute}
	fail := func(id string, n int) {
		t.Helper()
		for range n {
			if _, _, err := s.RecordEndpointOutcome(ctx, id, false, rules); err != nil {
				t.Fatal(err)
			}
		}
	}
	fail(ids[0], 1)
	fail(ids[1], 2)
	fail(bulk[0], 2)
	fail(bulk[1], 1)
	if _, _, err := s.RecordEndpointOutcome(ctx, bulk[2], true, rules); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if _, _, err := s.RecordDelivery(ctx, NewDelivery{BridgeID: ids[1], MessageID: fmt.Sprintf("m-%d", i), Topic: "/t",
			SenderAddress: randomAddress(t), Payload: []byte("x")}); err != nil {
			t.Fatal(err)
		}
	}
	check("failing, open, healthy with a row, and a backlog")
	if ok, err := s.DisableEndpoint(ctx, bulk[0], time.Now().Add(time.Second)); err != nil || !ok {
		t.Fatalf("disable endpoint: %v %v", ok, err)
	}
	check("one disabled")
	if err := s.ResetEndpointHealth(ctx, bulk[0]); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.RecordEndpointOutcome(ctx, ids[0], true, rules); err != nil {
		t.Fatal(err)
	}
	check("reset and recovered")

	// Deleted: an open endpoint's bridge with its backlog, one through the
	// API, and many in one statement.
	if _, err := s.pool.Exec(ctx, `DELETE FROM bridges WHERE id = $1`, ids[1]); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteBridge(ctx, a.ID, ids[2]); err != nil {
		t.Fatal(err)
	}
	if _, err := s.pool.Exec(ctx, `DELETE FROM bridges WHERE id = ANY($1::uuid[])`, bulk[:300]); err != nil {
		t.Fatal(err)
	}
	check("deleted, one by one and 300 at once")

	// Created and deleted in transactions that roll back.
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `DELETE FROM bridges WHERE id = ANY($1::uuid[])`, bulk[300:]); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO bridges (id, account_id, address, key_id, key_nonce, key_ciphertext)
		VALUES (gen_random_uuid(), $1, '0x00000000000000000000000000000000000000ff', 'k1',
			'\x000000000000000000000000'::bytea, '\x0000000000000000000000000000000000'::bytea)`, a.ID); err != nil {
		t.Fatal(err)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	check("a transaction rolled back")

	if _, err := s.pool.Exec(ctx, `TRUNCATE bridges CASCADE`); err != nil {
		t.Fatal(err)
	}
	check("truncated")
	insertBridges(t, s, a.ID, 7)
	check("seven after the truncate")
}

// TestEndpointCountsPlanReadsNoBridges: the scrape's count reads no row of
// bridges, nor the healthy rows of endpoint_health: with 4,000 bridges,
// nearly every one with a healthy health row, its plan scans neither
// table, and Postgres counts no row of bridges read while it runs
// (pg_stat_user_tables), and no more rows of endpoint_health than there
// are endpoints that are not healthy.
func TestEndpointCountsPlanReadsNoBridges(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	_, url := newTestStore(t)
	s := oneConnStore(t, url)
	a, _ := newAccount(t, s, "alice")
	ids := insertBridges(t, s, a.ID, 4000)
	if _, err := s.pool.Exec(ctx, `INSERT INTO endpoint_health (bridge_id, last_success_at) SELECT id, now() FROM bridges`); err != nil {
		t.Fatal(err)
	}
	rules := BreakerRules{OpenAfter: 2, ProbeMin: time.Minute}
	for i, id := range ids[:6] {
		for range 1 + i%2 {
			if _, _, err := s.RecordEndpointOutcome(ctx, id, false, rules); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := s.pool.Exec(ctx, `VACUUM ANALYZE bridges, endpoint_health, bridge_counts`); err != nil {
		t.Fatal(err)
	}
	rows, err := s.pool.Query(ctx, `EXPLAIN (ANALYZE, BUFFERS) `+endpointCountsQuery)
	if err != nil {
		t.Fatal(err)
	}
	lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	plan := strings.Join(lines, "\n")
	if strings.Contains(plan, " on bridges ") || strings.Contains(plan, " on bridges\n") || strings.Contains(plan, "Seq Scan on endpoint_health") {
		t.Fatalf("the endpoint counts read bridges, or scan endpoint_health:\n%s", plan)
	}
	read := func() (bridges, health int64) {
		t.Helper()
		if _, err := s.pool.Exec(ctx, "SELECT pg_stat_force_next_flush()"); err != nil {
			t.Fatal(err)
		}
		if err := s.pool.QueryRow(ctx, `SELECT
				(SELECT coalesce(seq_tup_read, 0) + coalesce(idx_tup_fetch, 0) FROM pg_stat_user_tables WHERE relname = 'bridges')
				+ (SELECT coalesce(sum(idx_tup_read), 0) FROM pg_stat_user_indexes WHERE relname = 'bridges'),
				(SELECT coalesce(seq_tup_read, 0) + coalesce(idx_tup_fetch, 0) FROM pg_stat_user_tables WHERE relname = 'endpoint_health')
				+ (SELECT coalesce(sum(idx_tup_read), 0) FROM pg_stat_user_indexes WHERE relname = 'endpoint_health')`).Scan(&bridges, &health); err != nil {
			t.Fatal(err)
		}
		return bridges, health
	}
	b0, h0 := read()
	counts, _, err := s.EndpointCounts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	b1, h1 := read()
	if want := (map[EndpointState]int64{EndpointHealthy: 3994, EndpointFailing: 3, EndpointOpen: 3, EndpointDisabled: 0}); !maps.Equal(counts, want) {
		t.Fatalf("EndpointCounts %v, want %v", counts, want)
	}
	t.Logf("the endpoint counts read %d rows of bridges and %d of endpoint_health (4000 bridges, 6 endpoints not healthy)", b1-b0, h1-h0)
	if b1 != b0 || h1-h0 > 3*6 {
		t.Fatalf("the endpoint counts read %d rows of bridges and %d of endpoint_health, want none and at most 18:\n%s", b1-b0, h1-h0, plan)
	}
}

// TestBridgeCountsStartFromTheBridgesThere migrates a database that
// already holds bridges (and endpoints in each state) to bridge_counts:
// the endpoint counts start from the bridges that were there, and follow
// the ones created and deleted after.
func TestBridgeCountsStartFromTheBridgesThere(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := pgtest.NewDatabase(t, pgtest.Template{Name: "empty", Migrate: func(context.Context, string) error { return nil }})
	before := fstest.MapFS{}
	entries, err := fs.ReadDir(migrationFiles, "migrations")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Name() >= "0016" {
			continue
		}
		data, err := fs.ReadFile(migrationFiles, "migrations/"+e.Name())
		if err != nil {
			t.Fatal(err)
		}
		before["migrations/"+e.Name()] = &fstest.MapFile{Data: data}
	}
	previous := schema
	previous.FS = before
	if err := previous.Apply(ctx, url); err != nil {
		t.Fatalf("migrate to the migration before 0016: %v", err)
	}
	s := openStore(t, url, mustSealer(t, testKey(t, "k1")))
	a, _ := newAccount(t, s, "alice")
	ids := insertBridges(t, s, a.ID, 40)
	if _, err := s.pool.Exec(ctx, `INSERT INTO endpoint_health (bridge_id, state, failure_streak) VALUES ($1, 'failing', 1)`, ids[0]); err != nil {
		t.Fatal(err)
	}
	if err := Migrate(ctx, url); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	counts, _, err := s.EndpointCounts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := (map[EndpointState]int64{EndpointHealthy: 39, EndpointFailing: 1, EndpointOpen: 0, EndpointDisabled: 0}); !maps.Equal(counts, want) {
		t.Fatalf("after the migration: EndpointCounts %v, want %v", counts, want)
	}
	insertBridges(t, s, a.ID, 5)
	if _, err := s.pool.Exec(ctx, `DELETE FROM bridges WHERE id = ANY($1::uuid[])`, ids[:10]); err != nil {
		t.Fatal(err)
	}
	counts, _, err = s.EndpointCounts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := (map[EndpointState]int64{EndpointHealthy: 35, EndpointFailing: 0, EndpointOpen: 0, EndpointDisabled: 0}); !maps.Equal(counts, want) {
		t.Fatalf("after 5 created and 10 deleted: EndpointCounts %v, want %v", counts, want)
	}
}
