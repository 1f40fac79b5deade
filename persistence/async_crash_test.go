package persistence

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"testing"
	"time"
)

// privatePostgres is a Postgres server of the test's own, in a temporary
// data directory, that the test can crash (an immediate stop: every
// process quits at once, and WAL that was still in Postgres's buffers is
// gone, as after a kill -9 of the server).
type privatePostgres struct {
	t    *testing.T
	bin  string
	dir  string
	port int
	root bool
}

// startPrivatePostgres creates and starts a private server whose WAL
// writer flushes asynchronous commits only every 10 s, so that a crash
// soon after one loses it. It skips the test when the PostgreSQL server
// binaries are missing.
func startPrivatePostgres(t *testing.T) *privatePostgres {
	t.Helper()
	bin := ""
	if p, err := exec.LookPath("initdb"); err == nil {
		bin = filepath.Dir(p)
	} else {
		dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
		sort.Strings(dirs)
		if len(dirs) > 0 {
			bin = dirs[len(dirs)-1]
		}
	}
	if bin == "" {
		t.Skip("no PostgreSQL server binaries (initdb) to run a private server")
	}
	base, err := os.MkdirTemp("", "pgcrash-")
	if err != nil {
		t.Fatal(err)
	}
	// The server refuses to run as root; as root it runs as postgres,
	// which must reach the data directory.
	if err := os.Chmod(base, 0o755); err != nil {
		t.Fatal(err)
	}
	pg := &privatePostgres{t: t, bin: bin, dir: filepath.Join(base, "data"), root: os.Geteuid() == 0}
	if err := os.Mkdir(pg.dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if pg.root {
		u, err := user.Lookup("postgres")
		if err != nil {
			t.Skipf("running as root without a postgres user for the private server: %v", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(pg.dir, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	pg.port = l.Addr().(*net.TCPAddr).Port
	l.Close()
	pg.run(false, "initdb", "-D", pg.dir, "-U", "postgres", "--auth=trust", "--encoding=UTF8", "--no-sync")
	t.Cleanup(func() {
		pg.run(true, "pg_ctl", "-D", pg.dir, "-m", "immediate", "-w", "stop")
		os.RemoveAll(base)
	})
	pg.start()
	return pg
}

// run runs one of the server's programs, as postgres when the test runs
// as root; it fails the test on an error unless mayFail.
func (pg *privatePostgres) run(mayFail bool, name string, args ...string) {
	pg.t.Helper()
	cmd := exec.Command(filepath.Join(pg.bin, name), args...)
	if pg.root {
		cmd = exec.Command("runuser", append([]string{"-u", "postgres", "--", filepath.Join(pg.bin, name)}, args...)...)
	}
	if out, err := cmd.CombinedOutput(); err != nil && !mayFail {
		pg.t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
}

// start starts the server, which recovers from its WAL after a crash.
func (pg *privatePostgres) start() {
	pg.t.Helper()
	opts := fmt.Sprintf("-p %d -c listen_addresses=127.0.0.1 -c unix_socket_directories=%s -c autovacuum=off "+
		"-c wal_writer_delay=10000 -c wal_writer_flush_after=1GB -c checkpoint_timeout=3600 -c fsync=on", pg.port, pg.dir)
	pg.run(false, "pg_ctl", "-D", pg.dir, "-l", filepath.Join(pg.dir, "server.log"), "-w", "-t", "60", "-o", opts, "start")
}

// crash stops the server at once, as a crash would, and starts it again.
func (pg *privatePostgres) crash() {
	pg.t.Helper()
	pg.run(false, "pg_ctl", "-D", pg.dir, "-m", "immediate", "-w", "stop")
	pg.start()
}

func (pg *privatePostgres) url() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", pg.port)
}

// TestAsyncCommitsAreLostOnlyBehindWhatFollows: the cursor moves commit
// without waiting for the disk (fenced.go, asyncCommit); a crash of
// Postgres may lose them, but only with everything after them, and never
// a delivery record or an outbox id the store handed out, which a node
// that outlives the crash goes on relying on. A private Postgres, whose
// WAL writer flushes asynchronous commits only every 10 s, is crashed
// after:
//   - a batch of records, its cursor move and a synchronous completion
//     of two of them, which the store acknowledged: all of it survives;
//   - then a second batch of records, which survives too, a block of
//     outbox ids, which is not drawn again after the crash, and the
//     batch's cursor move, which the crash may lose.
//
// Each round asserts that the crash lost the last cursor move, so that the
// test shows commits being lost; the WAL writer's 10 s cycle can flush it
// just before a crash, and then the round is made again.
func TestAsyncCommitsAreLostOnlyBehindWhatFollows(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pg := startPrivatePostgres(t)
	if err := Migrate(ctx, pg.url()); err != nil {
		t.Fatal(err)
	}
	sealer := mustSealer(t, testKey(t, "k1"))
	open := func() *Store {
		s, err := Open(ctx, pg.url(), sealer)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	s := open()
	acct, _ := newAccount(t, s, "alice")
	b, _ := newBridge(t, s, acct.ID, []byte("bundle-1"))
	l, err := s.AcquireLease(ctx, b.ID, "node-1/a", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	sender := randomAddress(t)
	record := func(s *Store, round, batch int) []Delivery {
		t.Helper()
		var nds []NewDelivery
		for i := 0; i < 3; i++ {
			nds = append(nds, NewDelivery{BridgeID: b.ID, MessageID: fmt.Sprintf("m-%d-%d-%d", round, batch, i), Topic: "/t",
				SenderAddress: sender, SentNs: int64(round*100 + batch*10 + i), Payload: []byte("p"), Lease: &l})
		}
		var out []Delivery
		for _, r := range s.RecordDeliveries(ctx, nds) {
			if r.Err != nil || !r.Created {
				t.Fatalf("record: %+v", r)
			}
			out = append(out, r.Delivery)
		}
		return out
	}
	move := func(s *Store, last Delivery) {
		t.Helper()
		for _, err := range s.SaveCursors(ctx, []CursorMove{{Lease: l, BridgeID: b.ID, Topic: "/t", TimestampNs: last.SentNs, Digest: make([]byte, 32)}}) {
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	lost := false
	for round := 1; round <= 3 && !lost; round++ {
		first := record(s, round, 1)
		move(s, first[2])
		var replies []int64
		for _, c := range s.CompleteDeliveries(ctx, []Completion{
			{Lease: l, DeliveryID: first[0].ID, Attempt: DeliveryAttempt{StatusCode: 200},
				Reply: &Reply{BridgeID: b.ID, Topic: "/t", TimestampNs: 1, Envelope: []byte("r0")}},
			{Lease: l, DeliveryID: first[1].ID, Attempt: DeliveryAttempt{StatusCode: 200},
				Reply: &Reply{BridgeID: b.ID, Topic: "/t", TimestampNs: 2, Envelope: []byte("r1")}},
		}) {
			if c.Err != nil || !c.Completed || c.ReplyID == 0 {
				t.Fatalf("complete: %+v", c)
			}
			replies = append(replies, c.ReplyID)
		}
		second := record(s, round, 2)
		// A fresh block of outbox ids, drawn after the last commit of a
		// write: the node that drew them may outlive the crash and use
		// them. The Postgres these tests run on flushes the sequence's
		// advance when the draw commits, although the draw writes no row;
		// this catches one that does not.
		s.replyIDs.free = nil
		drawn, err := s.nextReplyID(ctx)
		if err != nil {
			t.Fatal(err)
		}
		drawnLast := drawn + int64(len(s.replyIDs.free))
		move(s, second[2])

		pg.crash()
		s.Close()
		s = open()
		if again, err := s.nextReplyID(ctx); err != nil || again <= drawnLast {
			t.Fatalf("round %d: after the crash the outbox id %d is drawn again (%v): the block %d to %d drawn before it is handed out twice",
				round, again, err, drawn, drawnLast)
		}

		// What the store acknowledged as durable is there, and with it
		// every record and cursor move before it.
		for i, d := range first {
			got, err := s.DeliveryByID(ctx, d.ID)
			if err != nil {
				t.Fatalf("round %d: delivery %d of the first batch, before a durable completion, is gone: %v", round, i, err)
			}
			if want := map[bool]DeliveryStatus{true: DeliverySucceeded, false: DeliveryPending}[i < 2]; got.Status != want {
				t.Fatalf("round %d: delivery %d of the first batch is %s after the crash, want %s", round, i, got.Status, want)
			}
		}
		for i, id := range replies {
			r, err := s.RepliesOf(ctx, first[i].ID)
			if err != nil || len(r) != 1 || r[0].ID != id {
				t.Fatalf("round %d: the reply %d of a durable completion is not in the outbox: %+v %v", round, id, r, err)
			}
		}
		cursors, err := s.Cursors(ctx, b.ID)
		if err != nil {
			t.Fatal(err)
		}
		at := cursors["/t"].LastTimestampNs
		if at < first[2].SentNs {
			t.Fatalf("round %d: the cursor is at %d after the crash, before the first batch's move to %d, which a durable completion followed",
				round, at, first[2].SentNs)
		}
		// Every record the store acknowledged survives: the node may have
		// outlived the crash and moved on past it.
		for i, d := range second {
			if _, err := s.DeliveryByID(ctx, d.ID); err != nil {
				t.Fatalf("round %d: delivery %d of the second batch, acknowledged before the crash, is gone: %v", round, i, err)
			}
		}
		lost = at < second[2].SentNs
		t.Logf("round %d: the second batch's cursor move was %s", round, map[bool]string{true: "lost", false: "kept"}[lost])
	}
	s.Close()
	if !lost {
		t.Fatal("three crashes soon after an asynchronous cursor move each kept it: the test does not show commits being lost")
	}
}
