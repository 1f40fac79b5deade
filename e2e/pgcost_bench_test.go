package e2e

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// perfApp is the application_name of the bridge node's Postgres
// connections in BenchmarkForwardGoals, by which its backends are told
// from the XMTP node's, which shares the database.
const perfApp = "bridge-perf-node"

// pgMeter measures what Postgres spends on the bridge node's behalf: the
// CPU of the backends of the node's connections (from /proc), the WAL
// written for the bridge's tables, and the node's round trips.
//
// The WAL is read back with pg_walinspect and each record is attributed
// to the relation of its first block: the records of this database's
// relations other than the XMTP node's, plus the records of no relation
// (commits, multixacts) of their transactions, are the bridge's. Other databases on the server (other
// tests) do not count. The record types give the tuple writes: heap
// inserts, updates and HOT updates per table, and index entries per index.
type pgMeter struct {
	b    *testing.B
	conn *pgx.Conn
	api  string
	// walinspect is false when the extension could not be created; the
	// WAL is then only the server's total.
	walinspect bool
}

// pgReading is one reading of a pgMeter.
type pgReading struct {
	lsn string
	cpu map[int]time.Duration
	// bg is the CPU of the server's WAL writer, checkpointer and
	// background writer, which do a commit's disk writes when the
	// backend does not wait for them (asynchronous commits).
	bg       map[int]time.Duration
	acquires float64
	tables   map[string][4]int64 // n_tup_ins, n_tup_upd, n_tup_hot_upd, n_tup_del
}

// newPGMeter connects to db, where the bridge node whose HTTP address is
// api keeps its tables.
func newPGMeter(b *testing.B, db, api string) *pgMeter {
	b.Helper()
	conn, err := pgx.Connect(context.Background(), db)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = conn.Close(context.Background()) })
	m := &pgMeter{b: b, conn: conn, api: api}
	// A temporary replication slot of this connection keeps the WAL from
	// now on until it is read back (a checkpoint would recycle it); it
	// goes away with the connection.
	_, err = conn.Exec(context.Background(), `CREATE EXTENSION IF NOT EXISTS pg_walinspect`)
	if err == nil {
		_, err = conn.Exec(context.Background(), `SELECT pg_create_physical_replication_slot('pgcost_'||pg_backend_pid(), true, true)`)
	}
	if err != nil {
		b.Logf("Postgres per message: no pg_walinspect or replication slot (%v); WAL is the server's total", err)
	} else {
		m.walinspect = true
	}
	return m
}

// read takes a reading now.
func (m *pgMeter) read() pgReading {
	m.b.Helper()
	ctx := context.Background()
	r := pgReading{cpu: map[int]time.Duration{}, bg: map[int]time.Duration{}, tables: map[string][4]int64{}}
	if err := m.conn.QueryRow(ctx, `SELECT pg_current_wal_insert_lsn()::text`).Scan(&r.lsn); err != nil {
		m.b.Fatal(err)
	}
	rows, err := m.conn.Query(ctx, `SELECT pid FROM pg_stat_activity WHERE application_name = $1`, perfApp)
	if err != nil {
		m.b.Fatal(err)
	}
	pids, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil {
		m.b.Fatal(err)
	}
	for _, p := range pids {
		if _, err := os.Stat(fmt.Sprintf("/proc/%d/stat", p)); err != nil {
			continue // ended meanwhile
		}
		r.cpu[int(p)] = cpuTime(m.b, int(p))
	}
	rows, err = m.conn.Query(ctx, `SELECT pid FROM pg_stat_activity
		WHERE backend_type IN ('walwriter', 'checkpointer', 'background writer')`)
	if err != nil {
		m.b.Fatal(err)
	}
	pids, err = pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil {
		m.b.Fatal(err)
	}
	for _, p := range pids {
		if _, err := os.Stat(fmt.Sprintf("/proc/%d/stat", p)); err == nil {
			r.bg[int(p)] = cpuTime(m.b, int(p))
		}
	}
	r.acquires, _ = metricSum(m.api, "bridge_persistence_pool_acquires_total")
	rows, err = m.conn.Query(ctx, `SELECT relname, n_tup_ins, n_tup_upd, n_tup_hot_upd, n_tup_del FROM pg_stat_user_tables
		WHERE relname NOT LIKE 'xmtp%'`)
	if err != nil {
		m.b.Fatal(err)
	}
	for rows.Next() {
		var name string
		var v [4]int64
		if err := rows.Scan(&name, &v[0], &v[1], &v[2], &v[3]); err != nil {
			m.b.Fatal(err)
		}
		r.tables[name] = v
	}
	rows.Close()
	return r
}

// settle waits until the backends have reported their table counters,
// which a backend sends at most once a second, and an idle one within
// ten seconds.
func (m *pgMeter) settle() { time.Sleep(11 * time.Second) }

// pgFigures is what a run cost Postgres per message.
type pgFigures struct {
	cpuMs, bgMs, walBridge, walServer, trips float64
}

// report logs the cost of n messages between from and to, with the
// tuple writes per relation, and returns the headline figures.
func (m *pgMeter) report(tag string, n int, from, to pgReading) pgFigures {
	m.b.Helper()
	ctx := context.Background()
	var cpu time.Duration
	for p, t := range to.cpu {
		cpu += t - from.cpu[p] // a backend started in the window counts from 0
	}
	var bg time.Duration
	for p, t := range to.bg {
		if t0, ok := from.bg[p]; ok {
			bg += t - t0
		}
	}
	f := pgFigures{cpuMs: float64(cpu.Microseconds()) / 1000 / float64(n), bgMs: float64(bg.Microseconds()) / 1000 / float64(n),
		trips: (to.acquires - from.acquires) / float64(n)}
	var server float64
	if err := m.conn.QueryRow(ctx, `SELECT pg_wal_lsn_diff($2::pg_lsn, $1::pg_lsn)`, from.lsn, to.lsn).Scan(&server); err != nil {
		m.b.Fatal(err)
	}
	f.walServer = server / float64(n)
	var lines []string
	if m.walinspect {
		f.walBridge, lines = m.walByRelation(from.lsn, to.lsn, n)
	}
	m.b.Logf("Postgres per message, %s (%d messages): backends of the node's %d connections %.3f ms CPU, and the server's WAL writer, checkpointer and background writer %.3f ms (server-wide); WAL %.0f bytes for the bridge's tables (%.0f bytes server-wide, other databases included); %.2f round trips of the node's pool",
		tag, n, len(to.cpu), f.cpuMs, f.bgMs, f.walBridge, f.walServer, f.trips)
	if len(lines) > 0 && os.Getenv("PERF_NODE_LOG") != "" {
		m.b.Logf("Postgres per message, %s, WAL by relation (bytes, records by kind and their bytes):\n%s", tag, strings.Join(lines, "\n"))
	}
	return f
}

// tableWrites logs the table counters' inserts, updates and HOT updates
// per message between from and to, which must have settled.
func (m *pgMeter) tableWrites(tag string, n int, from, to pgReading) {
	var names []string
	for name := range to.tables {
		names = append(names, name)
	}
	sort.Strings(names)
	var lines []string
	for _, name := range names {
		a, b := from.tables[name], to.tables[name]
		ins, upd, hot, del := b[0]-a[0], b[1]-a[1], b[2]-a[2], b[3]-a[3]
		if ins == 0 && upd == 0 && del == 0 {
			continue
		}
		per := func(v int64) float64 { return float64(v) / float64(n) }
		lines = append(lines, fmt.Sprintf("%s: inserted %.2f, updated %.2f (HOT %.2f), deleted %.2f", name, per(ins), per(upd), per(hot), per(del)))
	}
	m.b.Logf("Postgres per message, %s (%d messages), pg_stat_user_tables:\n%s", tag, n, strings.Join(lines, "\n"))
}

// walByRelation sums the WAL between from and to by relation of this
// database (indexes and TOAST named as such), leaving out the XMTP node's
// tables, and adds the records of no relation of the transactions that wrote
// them. It returns the bytes per message and one line per relation.
func (m *pgMeter) walByRelation(from, to string, n int) (float64, []string) {
	m.b.Helper()
	// pg_walinspect reads only WAL on disk; the last commits may not have
	// waited for it.
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		var flushed bool
		if err := m.conn.QueryRow(context.Background(), `SELECT pg_current_wal_flush_lsn() >= $1::pg_lsn`, to).Scan(&flushed); err != nil || flushed {
			break
		}
	}
	rows, err := m.conn.Query(context.Background(), `
		WITH rels AS (
			SELECT pg_relation_filenode(c.oid)::text AS node,
				CASE WHEN c.relkind = 't' THEN o.relname || ' toast'
					WHEN t.relkind = 't' THEN o2.relname || ' toast index' ELSE c.relname END AS name,
				coalesce(o.relname, o2.relname, t.relname, c.relname) AS owner
			FROM pg_class c
			LEFT JOIN pg_index x ON x.indexrelid = c.oid
			LEFT JOIN pg_class t ON t.oid = x.indrelid
			LEFT JOIN pg_class o ON o.reltoastrelid = c.oid
			LEFT JOIN pg_class o2 ON o2.reltoastrelid = t.oid
			WHERE pg_relation_filenode(c.oid) IS NOT NULL),
		w AS (
			SELECT xid::text AS xid, resource_manager || ' ' || record_type AS kind, record_length AS len,
				(regexp_match(block_ref, 'rel \d+/(\d+)/(\d+)')) AS ref
			FROM pg_get_wal_records_info($1::pg_lsn, $2::pg_lsn)),
		mine AS (
			SELECT w.xid, w.kind, w.len, r.name FROM w JOIN rels r ON r.node = w.ref[2]
			WHERE w.ref[1] = (SELECT oid::text FROM pg_database WHERE datname = current_database())
				AND r.owner NOT LIKE 'xmtp%'),
		commits AS (
			SELECT w.xid, w.kind, w.len, 'records of no relation (commits, multixacts)' AS name FROM w
			WHERE w.ref IS NULL AND w.xid IN (SELECT xid FROM mine WHERE xid <> '0'))
		SELECT name, kind, sum(len)::bigint, count(*) FROM (SELECT * FROM mine UNION ALL SELECT * FROM commits) a
		GROUP BY name, kind ORDER BY name, kind`, from, to)
	if err != nil {
		m.b.Logf("WAL by relation: %v", err)
		return 0, nil
	}
	type rel struct {
		bytes int64
		kinds []string
	}
	byName := map[string]*rel{}
	var total int64
	for rows.Next() {
		var name, kind string
		var bytes, count int64
		if err := rows.Scan(&name, &kind, &bytes, &count); err != nil {
			m.b.Logf("WAL by relation: %v", err)
			return 0, nil
		}
		r := byName[name]
		if r == nil {
			r = &rel{}
			byName[name] = r
		}
		r.bytes += bytes
		total += bytes
		r.kinds = append(r.kinds, fmt.Sprintf("%s %.2f (%.0f B)", kind, float64(count)/float64(n), float64(bytes)/float64(n)))
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		m.b.Logf("WAL by relation: %v", err)
		return 0, nil
	}
	names := make([]string, 0, len(byName))
	for name := range byName {
		names = append(names, name)
	}
	sort.Slice(names, func(i, j int) bool { return byName[names[i]].bytes > byName[names[j]].bytes })
	lines := make([]string, 0, len(names))
	for _, name := range names {
		r := byName[name]
		lines = append(lines, fmt.Sprintf("  %s: %.0f bytes; %s", name, float64(r.bytes)/float64(n), strings.Join(r.kinds, ", ")))
	}
	return float64(total) / float64(n), lines
}
