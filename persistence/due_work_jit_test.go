package persistence

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// TestDueWorkOnIsNotJITCompiled: the store's statements run without JIT
// compilation, even where their plan's estimated cost crosses
// jit_above_cost. The node's pass over its due work runs in well under a
// millisecond, but a node that started with 50,000 bridges and few leases
// cached a generic plan estimated above the threshold, and Postgres
// compiled it on every pass, about 30 ms each, a pass soon after every
// activation while the node started. Here the threshold is lowered on the
// store's one connection instead of growing the tables, and Postgres
// explains the plan the connection cached (EXPLAIN EXECUTE of its
// prepared statement), with what compiling it took, if it did.
func TestDueWorkOnIsNotJITCompiled(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	_, url := newTestStore(t)
	s := oneConnStore(t, url)
	// Whether the server can compile, asked of a connection of its own:
	// the store's do not compile.
	plain, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	var available bool
	err = plain.QueryRow(ctx, `SELECT pg_jit_available()`).Scan(&available)
	plain.Close(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !available {
		t.Skip("this Postgres server cannot JIT-compile")
	}
	nl, err := s.StartNodeLease(ctx, "node-a", "node-a.m1", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.pool.Exec(ctx, `SET jit_above_cost = 0`); err != nil {
		t.Fatal(err)
	}
	for range 8 {
		if _, err := s.DueWorkOn(ctx, nl, 50000); err != nil {
			t.Fatal(err)
		}
	}
	var name string
	if err := s.pool.QueryRow(ctx, `SELECT name FROM pg_prepared_statements WHERE statement LIKE '%WITH RECURSIVE waiting%'`).Scan(&name); err != nil {
		t.Fatalf("the due work statement is not prepared on the store's connection: %v", err)
	}
	var plan string
	if err := s.pool.QueryRow(ctx, `EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE `+name+`(50000, `+strconv.FormatInt(nl.ID, 10)+`)`).Scan(&plan); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(plan, `"JIT"`) {
		t.Fatalf("the pass over the due work was JIT-compiled:\n%s", plan)
	}
}
