package persistence

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/xmtpbridge/bridge/internal/testkit"
)

// BenchmarkLeaseRenewal measures what keeping the leases of a node's
// identities alive costs, for LEASE_IDENTITIES hosted identities (default
// 50,000), in one run: the per-identity renewal a node did before (every
// lease rewritten, RenewLeases in batches of 5,000) against the renewal of
// its one node lease (RenewNodeLease) the identity leases live under. It
// reports, for each, the wall time of one round, the CPU time of
// Postgres's backends serving this database and of this process per round
// (from /proc), and Postgres's idle CPU in ms per second at the default
// BRIDGE_LEASE_TTL of 15 s (a round every 5 s), with the ratios old/new.
func BenchmarkLeaseRenewal(b *testing.B) {
	n := 50000
	if v, err := strconv.Atoi(os.Getenv("LEASE_IDENTITIES")); err == nil && v > 0 {
		n = v
	}
	s, _ := newTestStore(b)
	ctx := context.Background()
	const ttl = time.Hour
	nl, err := s.StartNodeLease(ctx, "node-a", "node-a.m1", ttl)
	if err != nil {
		b.Fatal(err)
	}
	// The same number of identities both ways: n leases on their own,
	// and n under the node lease.
	if _, err := s.Pool().Exec(ctx, `INSERT INTO identity_leases (identity, owner, epoch, expires_at)
		SELECT 'old-' || g, 'node-a.m1/' || g, 1, now() + interval '1 hour' FROM generate_series(1, $1) g`, n); err != nil {
		b.Fatal(err)
	}
	if _, err := s.Pool().Exec(ctx, `INSERT INTO identity_leases (identity, owner, epoch, expires_at, node_lease)
		SELECT 'new-' || g, 'node-a.m1/' || g, 1, 'infinity', $2 FROM generate_series(1, $1) g`, n, nl.ID); err != nil {
		b.Fatal(err)
	}
	if _, err := s.Pool().Exec(ctx, `ANALYZE identity_leases`); err != nil {
		b.Fatal(err)
	}
	old := make([]Lease, n)
	for i := range old {
		old[i] = Lease{Identity: fmt.Sprintf("old-%d", i+1), Owner: fmt.Sprintf("node-a.m1/%d", i+1), Epoch: 1}
	}
	perIdentity := func() {
		renewed, err := s.RenewLeases(ctx, old, ttl)
		if err != nil || len(renewed) != n {
			b.Fatalf("per-identity renewal: %d of %d renewed, %v", len(renewed), n, err)
		}
	}
	nodeLease := func() {
		if nl, err = s.RenewNodeLease(ctx, nl, ttl); err != nil {
			b.Fatalf("node lease renewal: %v", err)
		}
	}
	// Warm both, so every connection of the pool exists when the
	// backends are listed.
	perIdentity()
	for range 20 {
		nodeLease()
	}
	oldRound, oldPG, oldSelf := measureRounds(b, s, perIdentity, 3, 2*time.Second)
	newRound, newPG, newSelf := measureRounds(b, s, nodeLease, 200, 2*time.Second)
	// A round every third of the default BRIDGE_LEASE_TTL, 15 s.
	const period = 5 * time.Second
	msPerSec := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) / period.Seconds() }
	b.ReportMetric(float64(oldRound)/float64(time.Millisecond), "old-ms/round")
	b.ReportMetric(float64(newRound)/float64(time.Millisecond), "new-ms/round")
	b.ReportMetric(float64(oldRound)/float64(newRound), "round-ratio")
	b.ReportMetric(float64(oldPG)/float64(time.Millisecond), "old-pg-cpu-ms/round")
	b.ReportMetric(float64(newPG)/float64(time.Millisecond), "new-pg-cpu-ms/round")
	b.ReportMetric(msPerSec(oldPG), "old-pg-idle-ms/s")
	b.ReportMetric(msPerSec(newPG), "new-pg-idle-ms/s")
	b.ReportMetric(0, "ns/op")
	pgRatio := "n/a (under one clock tick per round)"
	if newPG > 0 {
		pgRatio = fmt.Sprintf("%.0fx", float64(oldPG)/float64(newPG))
	}
	fmt.Printf("lease renewal, %d identities on one node: per-identity %.1f ms/round (Postgres CPU %.1f ms, this process %.1f ms), "+
		"node lease %.3f ms/round (Postgres CPU %.3f ms, this process %.3f ms); wall ratio %.0fx, Postgres CPU ratio %s; "+
		"Postgres idle CPU at a 15 s lease TTL: %.2f ms/s before, %.4f ms/s after\n",
		n, ms(oldRound), ms(oldPG), ms(oldSelf), ms(newRound), ms(newPG), ms(newSelf),
		float64(oldRound)/float64(newRound), pgRatio, msPerSec(oldPG), msPerSec(newPG))
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// measureRounds runs round at least rounds times and for at least minTime,
// and returns the mean wall time per round and the mean CPU time per round
// of the Postgres backends serving the store's database and of this
// process.
func measureRounds(b *testing.B, s *Store, round func(), rounds int, minTime time.Duration) (wall, pg, self time.Duration) {
	b.Helper()
	pids := backendPIDs(b, s)
	pg0, self0 := pidsCPU(b, pids), pidsCPU(b, []int{os.Getpid()})
	start := time.Now()
	done := 0
	for done < rounds || time.Since(start) < minTime {
		round()
		done++
	}
	wall = time.Since(start)
	pg1, self1 := pidsCPU(b, pids), pidsCPU(b, []int{os.Getpid()})
	d := time.Duration(done)
	return wall / d, (pg1 - pg0) / d, (self1 - self0) / d
}

// backendPIDs returns the process ids of the Postgres backends connected
// to the store's database.
func backendPIDs(b *testing.B, s *Store) []int {
	b.Helper()
	rows, err := s.Pool().Query(context.Background(), `SELECT pid FROM pg_stat_activity
		WHERE datname = current_database() AND backend_type = 'client backend'`)
	if err != nil {
		b.Fatal(err)
	}
	defer rows.Close()
	var pids []int
	for rows.Next() {
		var pid int
		if err := rows.Scan(&pid); err != nil {
			b.Fatal(err)
		}
		pids = append(pids, pid)
	}
	if err := rows.Err(); err != nil {
		b.Fatal(err)
	}
	return pids
}

// pidsCPU sums the CPU time of pids; a process that ended counts nothing.
func pidsCPU(b *testing.B, pids []int) time.Duration {
	b.Helper()
	var sum time.Duration
	for _, pid := range pids {
		d, err := testkit.CPUTime(pid)
		if err != nil {
			if _, statErr := os.Stat("/proc/self/stat"); statErr != nil {
				b.Fatal(err)
			}
			continue
		}
		sum += d
	}
	return sum
}
