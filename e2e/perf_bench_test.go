package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	messagev1 "github.com/xmtp/proto/v3/go/message_api/v1"

	"github.com/xmtpbridge/bridge/actors/webhook/webhooktest"
	"github.com/xmtpbridge/bridge/internal/freeport"
	"github.com/xmtpbridge/bridge/internal/testkit"
	"github.com/xmtpbridge/bridge/persistence"
	"github.com/xmtpbridge/bridge/persistence/pgtest"
	"github.com/xmtpbridge/bridge/xmtp/api"
	"github.com/xmtpbridge/bridge/xmtp/client"
	"github.com/xmtpbridge/bridge/xmtp/content"
	"github.com/xmtpbridge/bridge/xmtp/conversation"
	"github.com/xmtpbridge/bridge/xmtp/keys"
)

// perfInFlight is how many messages the senders keep in flight in the
// closed-loop runs, and perfSenders how many XMTP identities send them.
const (
	perfInFlight = 128
	perfSenders  = 16
)

// BenchmarkForwardGoals prints the per-message goals of issue 12 in one
// run, each with its baseline and ratio. One `bridge node` process and a
// separate `bridge xmtp-node` process, an HTTP echo target, and Go senders
// in this process:
//
//   - goal 1, CPU per forwarded message: the bridge node process's CPU time
//     over a closed-loop run with 128 messages in flight, divided by the
//     messages, against the crypto floor (opening the message plus sealing
//     its reply, measured here on the same sizes, for the load's senders
//     taking turns; the floor of one conversation is printed beside it);
//   - goal 2, throughput: the bridge's round trips per second against a
//     bare Go echo client on the same XMTP node (it decrypts and replies;
//     no HTTP, no Postgres), both with 128 messages in flight;
//   - goal 3, latency: at half the bridge's peak rate, sent at a steady
//     pace, the p50 and p99 round trip of the bridge minus those of the
//     bare echo.
//
// After the goals it prints "Postgres per message" for the bridge's two
// runs (pgcost_bench_test.go): the CPU of the backends of the node's
// connections, the WAL written for the bridge's tables and the node's
// round trips; with PERF_NODE_LOG, also the WAL by relation and record
// kind (heap inserts, updates, HOT updates, index entries) and the table
// counters' row writes. Without -v, go test keeps only the first ten
// lines a benchmark logs, so the goal lines come before these.
//
// PERF_MESSAGES sets the messages of each closed-loop run (default 2000);
// the paced runs send half as many, at PERF_PACED_RATE messages per second
// when it is set (to compare two versions at the same load) instead of
// half the bridge's peak. PERF_CPU_PROFILE=<file> saves an 8 s
// CPU profile of the bridge node taken during the closed-loop run (through
// BRIDGE_PPROF_ADDR), and <file>.paced one of most of the paced run.
// PERF_ALLOC_PROFILE=<file> saves the node's allocation profile before
// (<file>.before) and after (<file>) the bridge's closed-loop run, so that
// `go tool pprof -sample_index=alloc_objects -base <file>.before <file>`
// shows the allocations of that run alone. The node's allocations per
// forwarded message in that run are logged in every run.
// PERF_NODE_LOG=1 prints the end of the node's log and, after the
// bridge's closed-loop run, its ingress lag histogram, the XMTP node's
// subscriber and refusal counters, where the round trips spent their time
// inside the bridge (from its delivery, attempt and outbox rows) and the
// planner's statistics of the hot tables. Every run logs each load's
// stages: publish, from the published message to the peer sealing its
// reply, the reply's way back, and opening it. PERF_STALL_DUMP=<dir> saves
// the bridge node's goroutines to <dir> and logs the database's sessions
// the first time a closed-loop round trip of the bridge waits over 2 s.
// PERF_LOADED_FLOOR=1 measures the crypto floor a second time, in the
// middle of the bridge's closed-loop run, and logs it beside the first:
// the same work, on a busy machine.
// One iteration does everything.
func BenchmarkForwardGoals(b *testing.B) {
	total := 2000
	if v, err := strconv.Atoi(os.Getenv("PERF_MESSAGES")); err == nil && v > 0 {
		total = v
	}
	// The node runs with the defaults a new user gets, not the e2e
	// harness's fast lease and sweep timers.
	tune := map[string]string{"BRIDGE_LOG_LEVEL": "warn", "BRIDGE_SWEEP_INTERVAL": "5s", "BRIDGE_LEASE_TTL": "15s",
		"BRIDGE_RECONCILE_INTERVAL": "15s",
		// Both loads keep 128 messages in flight on the XMTP node, above
		// its default bound of 32 publishes at once.
		"BRIDGE_XMTP_MAX_PUBLISHES_IN_FLIGHT": "1024"}
	// PERF_NODE_GOGC sets the node's GOGC, to measure what a garbage
	// collection target is worth.
	if v := os.Getenv("PERF_NODE_GOGC"); v != "" {
		tune["GOGC"] = v
	}
	profile := os.Getenv("PERF_CPU_PROFILE")
	stallDir := os.Getenv("PERF_STALL_DUMP")
	allocProfile := os.Getenv("PERF_ALLOC_PROFILE")
	if profile != "" || stallDir != "" || allocProfile != "" {
		tune["BRIDGE_PPROF_ADDR"] = freeport.Addr(b)
	}
	// The node's connections carry perfApp, by which the Postgres figures
	// tell its backends from the XMTP node's.
	db := pgtest.NewDatabase(b, template)
	sep := "?"
	if strings.Contains(db, "?") {
		sep = "&"
	}
	tune["DATABASE_URL"] = db + sep + "application_name=" + perfApp
	c := newClusterOn(b, db, tune)
	tg := webhooktest.NewTarget(b, persistence.FormatJSON)
	bridgeAddr := perfBridge(b, c, tg)
	ctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(cancel)
	xc, err := api.Dial(ctx, c.xmtpGRPC)
	if err != nil {
		b.Fatalf("dial xmtp node: %v", err)
	}
	b.Cleanup(func() { _ = xc.Close() })
	echoAddr := startBareEcho(b, ctx, xc)
	floor, floorOne := cryptoFloor(b, perfSenders), cryptoFloor(b, 1)

	toEcho := newPerfLoad(b, ctx, xc, echoAddr, perfSenders)
	toBridge := newPerfLoad(b, ctx, xc, bridgeAddr, perfSenders)
	pid := c.node.cmd.Process.Pid
	pg := newPGMeter(b, c.db, c.api)

	b.ResetTimer()
	// The node's CPU with no traffic, for the share of goal 1 that is not
	// per message.
	idle0, idleStart := cpuTime(b, pid), time.Now()
	time.Sleep(3 * time.Second)
	idle := float64((cpuTime(b, pid) - idle0).Microseconds()) / 1000 / time.Since(idleStart).Seconds()
	echoRate, _ := toEcho.closed("echo-peak", perfInFlight, total)
	profiled := make(chan error, 1)
	if profile != "" {
		go func() { profiled <- fetchProfile(tune["BRIDGE_PPROF_ADDR"], profile, 8*time.Second) }()
	}
	if allocProfile != "" {
		if err := fetchPprof("http://"+tune["BRIDGE_PPROF_ADDR"]+"/debug/pprof/allocs", "allocs", allocProfile+".before"); err != nil {
			b.Fatal(err)
		}
	}
	pgPeak0 := pg.read()
	cpu0, peakStart := cpuTime(b, pid), time.Now()
	if os.Getenv("PERF_NODE_LOG") != "" {
		if conn, err := pgx.Connect(context.Background(), c.db); err == nil {
			tableStats(b, conn, "before bridge-peak")
			_ = conn.Close(context.Background())
		}
	}
	if stallDir != "" {
		toBridge.onStall = func() { dumpStall(b, stallDir, c.db, tune["BRIDGE_PPROF_ADDR"]) }
	}
	// With PERF_LOADED_FLOOR, the crypto floor is measured again in the
	// middle of the bridge's closed-loop run: the same work on a busy
	// machine.
	loadedFloor := make(chan float64, 1)
	if os.Getenv("PERF_LOADED_FLOOR") != "" {
		go func() {
			time.Sleep(time.Duration(float64(total)/max(echoRate, 1)/3*float64(time.Second)) + 500*time.Millisecond)
			loadedFloor <- cryptoFloor(b, perfSenders)
		}()
	}
	stPeak0 := readStages(b, c.api)
	mallocs0 := mallocs(b, c.api)
	bridgeRate, _ := toBridge.closed("bridge-peak", perfInFlight, total)
	b.Logf("allocations per forwarded message on the bridge node at %d in flight: %.0f (go_memstats_mallocs_total)",
		perfInFlight, (mallocs(b, c.api)-mallocs0)/float64(total))
	logStageHist(b, "bridge-peak", stPeak0, readStages(b, c.api))
	toBridge.onStall = nil
	peakCPU := float64((cpuTime(b, pid) - cpu0).Microseconds()) / 1000
	if os.Getenv("PERF_LOADED_FLOOR") != "" {
		lf := <-loadedFloor
		b.Logf("crypto floor measured during the bridge's closed-loop run: %.3f ms (%.2fx the floor measured before the loads); goal 1 against it: %.2fx",
			lf, lf/floor, peakCPU/float64(total)/lf)
	}
	if allocProfile != "" {
		if err := fetchPprof("http://"+tune["BRIDGE_PPROF_ADDR"]+"/debug/pprof/allocs", "allocs", allocProfile); err != nil {
			b.Fatal(err)
		}
		b.Logf("allocation profile of the bridge node's closed-loop run: %s (base %s.before)", allocProfile, allocProfile)
	}
	pgPeak1 := pg.read()
	if os.Getenv("PERF_NODE_LOG") != "" {
		var bm []string
		for _, name := range []string{"bridge_ingress_lag_seconds", "bridge_forward_", "bridge_actor_messages", "bridge_webhook", "bridge_delivery"} {
			bm = append(bm, metric(b, c.api, name)...)
		}
		b.Logf("bridge node metrics:\n%s", strings.Join(bm, "\n"))
		var x []string
		for _, name := range []string{"bridge_xmtpnode_subscribers", "bridge_xmtpnode_requests_rejected_total{reason=\"busy\"}", "bridge_xmtpnode_envelopes_published_total"} {
			x = append(x, metric(b, "http://"+c.xmtpOps, name)...)
		}
		b.Logf("xmtp node metrics:\n%s", strings.Join(x, "\n"))
		bridgeStages(b, c.db, "bridge-peak", peakStart)
		if conn, err := pgx.Connect(context.Background(), c.db); err == nil {
			tableStats(b, conn, "after bridge-peak")
			_ = conn.Close(context.Background())
		}
	}
	cpuPerMsg := peakCPU / float64(total)
	netPerMsg := (peakCPU - idle*time.Since(peakStart).Seconds()) / float64(total)
	half := bridgeRate / 2
	if v, err := strconv.ParseFloat(os.Getenv("PERF_PACED_RATE"), 64); err == nil && v > 0 {
		half = v // a fixed rate, to compare two versions at the same load
	}
	echoBusy := machineBusy(b)
	echoLat := toEcho.paced("echo-half", half, total/2)
	echoShare := echoBusy()
	pacedProfiled := make(chan error, 1)
	if profile != "" {
		// One CPU profile at a time: the closed-loop one may still run.
		if err := <-profiled; err != nil {
			b.Fatal(err)
		}
		// The paced run lasts about total/2/half seconds; the profile
		// covers most of it.
		secs := max(2, int(float64(total/2)/half*0.8))
		go func() {
			pacedProfiled <- fetchProfile(tune["BRIDGE_PPROF_ADDR"], profile+".paced", time.Duration(secs)*time.Second)
		}()
	}
	pgPaced0 := pg.read()
	cpu1, pacedStart := cpuTime(b, pid), time.Now()
	bridgeBusy := machineBusy(b)
	stHalf0 := readStages(b, c.api)
	early0 := metric(b, c.api, "bridge_forward_early_attempts_total{")
	bridgeLat := toBridge.paced("bridge-half", half, total/2)
	logStageHist(b, "bridge-half", stHalf0, readStages(b, c.api))
	// Webhook calls started while their record committed (actors/early.go),
	// counted since the node started: before and after the paced run.
	b.Logf("bridge-half early attempts: before %v, after %v", early0, metric(b, c.api, "bridge_forward_early_attempts_total{"))
	bridgeShare := bridgeBusy()
	cpuPaced := float64((cpuTime(b, pid) - cpu1).Microseconds()) / 1000 / float64(total/2)
	pgPaced1 := pg.read()
	if os.Getenv("PERF_NODE_LOG") != "" {
		bridgeStages(b, c.db, "bridge-half", pacedStart)
		if conn, err := pgx.Connect(context.Background(), c.db); err == nil {
			tableStats(b, conn, "after bridge-half")
			_ = conn.Close(context.Background())
		}
	}
	b.StopTimer()
	// The goal lines come first after the loads' stage lines: without -v,
	// go test keeps only the first ten lines a benchmark logs.
	ep50, ep99 := percentile(echoLat, 50), percentile(echoLat, 99)
	bp50, bp99 := percentile(bridgeLat, 50), percentile(bridgeLat, 99)
	b.Logf("goal 1, CPU per forwarded message: %.3f ms on the bridge node at %d in flight (%.3f ms at half rate; %.3f ms without the node's idle %.1f ms/s); crypto floor (open + seal, the load's %d senders in turn) %.3f ms; ratio %.2fx (goal: <= 0.5 ms and <= 2x); on one conversation the floor is %.3f ms, ratio %.2fx",
		cpuPerMsg, perfInFlight, cpuPaced, netPerMsg, idle, perfSenders, floor, cpuPerMsg/floor, floorOne, cpuPerMsg/floorOne)
	b.Logf("goal 2, throughput: bridge %.1f round trips/s, bare Go echo %.1f round trips/s on the same XMTP node; ratio %.2f (goal: >= 0.50)",
		bridgeRate, echoRate, bridgeRate/echoRate)
	b.Logf("goal 3, latency added at half the bridge's peak (%.1f msg/s): p50 %+.1f ms (bridge %.1f, echo %.1f), p99 %+.1f ms (bridge %.1f, echo %.1f) (goal: p50 <= 5 ms, p99 <= 20 ms)",
		half, bp50-ep50, bp50, ep50, bp99-ep99, bp99, ep99)
	b.Logf("goal 3, the machine's CPU busy during the paced runs (every process on it: the bridge node, the XMTP node, Postgres and this one's senders and HTTP target): bridge %.0f%%, echo %.0f%% of %d cores",
		bridgeShare*100, echoShare*100, runtime.NumCPU())
	pgPeak := pg.report("bridge-peak", total, pgPeak0, pgPeak1)
	pgPaced := pg.report("bridge-half", total/2, pgPaced0, pgPaced1)
	if os.Getenv("PERF_NODE_LOG") != "" {
		pg.settle()
		pg.tableWrites("both bridge runs", total+total/2, pgPeak0, pg.read())
	}
	if profile != "" {
		if err := <-pacedProfiled; err != nil {
			b.Fatal(err)
		}
		b.Logf("CPU profile of the bridge node under the closed-loop load: %s; at half rate: %s.paced", profile, profile)
	}

	if os.Getenv("PERF_NODE_LOG") != "" {
		b.Logf("node log:\n%s", testkit.Tail(c.node.errs.String(), 20000))
	}
	b.ReportMetric(cpuPerMsg, "g1-cpu-ms/msg")
	b.ReportMetric(netPerMsg, "g1-net-cpu-ms/msg")
	b.ReportMetric(floor, "g1-floor-ms")
	b.ReportMetric(cpuPerMsg/floor, "g1-ratio")
	b.ReportMetric(floorOne, "g1-floor-one-conv-ms")
	b.ReportMetric(bridgeRate, "g2-bridge-rt/s")
	b.ReportMetric(echoRate, "g2-echo-rt/s")
	b.ReportMetric(bridgeRate/echoRate, "g2-ratio")
	b.ReportMetric(bp50-ep50, "g3-added-p50-ms")
	b.ReportMetric(bp99-ep99, "g3-added-p99-ms")
	b.ReportMetric(bridgeShare, "g3-machine-busy")
	b.ReportMetric(pgPeak.cpuMs, "pg-cpu-ms/msg")
	b.ReportMetric(pgPaced.cpuMs, "pg-half-cpu-ms/msg")
	b.ReportMetric(pgPaced.bgMs, "pg-half-bg-cpu-ms/msg")
	b.ReportMetric(pgPeak.walBridge, "pg-wal-B/msg")
	b.ReportMetric(pgPaced.walBridge, "pg-half-wal-B/msg")
	b.ReportMetric(pgPeak.trips, "pg-trips/msg")
	b.ReportMetric(0, "ns/op")
}

// perfBridge creates a bridge that forwards to the echo target with the
// default concurrency, and returns its XMTP address.
func perfBridge(b *testing.B, c *cluster, tg *webhooktest.Target) string {
	b.Helper()
	acct := mustCall(b, 201, "POST", c.api+"/v1/accounts", "", map[string]any{"name": "owner", "signupKey": signupKey})
	created := mustCall(b, 201, "POST", c.api+"/v1/bridges", str(acct, "apiKey"), map[string]any{
		"name": "perf", "forward": map[string]any{"url": tg.URL, "bodyFormat": "json", "replyMode": "reply"},
	})
	tg.SetSecret(str(created, "webhookSecret"))
	return str(created, "bridge", "address")
}

// startBareEcho runs the baseline: a Go XMTP client on the same node that
// answers every message with "echo: <text>", with no HTTP and no Postgres.
func startBareEcho(b *testing.B, ctx context.Context, xc *api.Client) string {
	b.Helper()
	k, err := keys.Generate()
	if err != nil {
		b.Fatal(err)
	}
	echo, err := client.New(client.Config{Bundle: k, API: xc})
	if err != nil {
		b.Fatal(err)
	}
	if err := echo.Start(ctx); err != nil {
		b.Fatalf("start echo: %v", err)
	}
	in, err := echo.Inbound(ctx)
	if err != nil {
		b.Fatalf("echo inbound: %v", err)
	}
	for range perfInFlight {
		go func() {
			for m := range in {
				text, _ := m.Content.Text()
				_, _ = echo.Reply(ctx, m.Topic, content.Text("echo: "+text))
			}
		}()
	}
	return echo.Address()
}

// cryptoFloor is the CPU a round trip cannot avoid, in milliseconds: open
// a message of the benchmark's size (verifying its signature) and seal the
// reply, for messages from senders peers taking turns, as the loads send
// them (perfSenders), or on one conversation. Each sender's first messages
// are opened before the count starts: the signature tables a peer's key
// gets after a few messages (keys.VerifyWithKey) are built by then, as
// they are in the bridge during its runs.
func cryptoFloor(b *testing.B, senders int) float64 {
	b.Helper()
	bob, _ := keys.Generate()
	bobPeer, err := keys.VerifyBundle(bob.PublicBundle())
	if err != nil {
		b.Fatal(err)
	}
	type pair struct {
		alice  *keys.PrivateKeyBundle
		ca, cb *conversation.Conversation
	}
	pairs := make([]pair, senders)
	for i := range pairs {
		alice, _ := keys.Generate()
		ca, invs, err := conversation.Invite(alice, bobPeer, "", nil, time.Now())
		if err != nil {
			b.Fatal(err)
		}
		cb, err := conversation.OpenInvitation(bob, invs[0])
		if err != nil {
			b.Fatal(err)
		}
		pairs[i] = pair{alice: alice, ca: ca, cb: cb}
	}
	const warm, n = 24, 320
	seal := func(k int) (*conversation.Conversation, *messagev1.Envelope) {
		p := pairs[k%senders]
		env, err := p.ca.Seal(p.alice, content.Text(fmt.Sprintf("bridge-peak %06d", k)), time.Now())
		if err != nil {
			b.Fatal(err)
		}
		return p.cb, env
	}
	roundTrip := func(cb *conversation.Conversation, env *messagev1.Envelope) {
		m, err := cb.Open(env)
		if err != nil {
			b.Fatal(err)
		}
		text, _ := m.Content.Text()
		if _, err := cb.Seal(bob, content.Text("echo: "+text), time.Now()); err != nil {
			b.Fatal(err)
		}
	}
	for k := range warm * senders {
		roundTrip(seal(k))
	}
	convs := make([]*conversation.Conversation, n)
	envs := make([]*messagev1.Envelope, n)
	for k := range n {
		convs[k], envs[k] = seal(k)
	}
	// CPU time of this thread, not wall time: the machine may be busy.
	// The median of five passes: one pass is tens of milliseconds, and
	// a single one varied by a third from run to run.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	passes := make([]time.Duration, 5)
	for p := range passes {
		cb, envs := convs, envs
		if p > 0 {
			cb, envs = make([]*conversation.Conversation, n), make([]*messagev1.Envelope, n)
			for k := range n {
				cb[k], envs[k] = seal(p*n + k)
			}
		}
		start := threadCPU(b)
		for k := range n {
			roundTrip(cb[k], envs[k])
		}
		passes[p] = threadCPU(b) - start
	}
	slices.Sort(passes)
	return float64(passes[len(passes)/2].Microseconds()) / 1000 / n
}

// machineBusy starts a reading of the machine's CPU; the function it
// returns gives the share of all cores that were busy since.
func machineBusy(b *testing.B) func() float64 {
	b.Helper()
	busy0, all0, err := testkit.MachineCPU()
	if err != nil {
		b.Fatal(err)
	}
	return func() float64 {
		busy1, all1, err := testkit.MachineCPU()
		if err != nil {
			b.Fatal(err)
		}
		if all1 <= all0 {
			return 0
		}
		return float64(busy1-busy0) / float64(all1-all0)
	}
}

// threadCPU is the CPU time the calling OS thread used so far (Linux).
func threadCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	const rusageThread = 1 // RUSAGE_THREAD
	if err := syscall.Getrusage(rusageThread, &ru); err != nil {
		b.Fatalf("thread cpu time: %v", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// perfLoad is a set of senders that publish texts to one peer and time
// the peer's "echo: <text>" replies, read from a subscription to their
// conversation topics.
type perfLoad struct {
	b       *testing.B
	ctx     context.Context
	peer    string
	senders []*client.Client
	byTopic map[string]*client.Client

	mu      sync.Mutex
	pending map[string]*inFlight
	stages  []stages // of the round trips since the last take
	// own holds when each sender's own message came back on the
	// subscription, by message id, until its round trip takes it.
	own map[string]time.Time
	// onStall, if set, runs once in a closed-loop run when a round trip
	// has waited over 2 s.
	onStall func()
}

// inFlight is one message waiting for its reply.
type inFlight struct {
	done  chan struct{}
	start time.Time
	// replyAt is when the peer sealed the reply (its envelope's
	// timestamp), and arrived when its envelope reached the reader.
	replyAt, arrived time.Time
}

// stages splits one round trip: publishing the message; from the
// published message to the peer sealing its reply (the XMTP node's
// delivery to the peer and the peer's work); from the sealed reply to its
// envelope reaching the senders' subscription (the peer's publish and the
// node's delivery back); and opening the reply here.
type stages struct {
	publish, peer, back, open time.Duration
	// node is from the published message to its copy reaching the
	// senders' own subscription: the XMTP node's fan-out.
	node time.Duration
}

// newPerfLoad makes n senders, each with a conversation with peer, and
// waits until each got a reply to a first message.
func newPerfLoad(b *testing.B, ctx context.Context, xc *api.Client, peer string, n int) *perfLoad {
	b.Helper()
	l := &perfLoad{b: b, ctx: ctx, peer: peer, byTopic: map[string]*client.Client{}, pending: map[string]*inFlight{}, own: map[string]time.Time{}}
	var topics []string
	for range n {
		k, err := keys.Generate()
		if err != nil {
			b.Fatal(err)
		}
		c, err := client.New(client.Config{Bundle: k, API: xc})
		if err != nil {
			b.Fatal(err)
		}
		if err := c.Start(ctx); err != nil {
			b.Fatalf("start sender: %v", err)
		}
		conv, err := c.Conversation(ctx, peer, "")
		if err != nil {
			b.Fatalf("start conversation: %v", err)
		}
		l.senders = append(l.senders, c)
		l.byTopic[conv.Topic] = c
		topics = append(topics, conv.Topic)
	}
	sub := xc.Subscribe(ctx)
	b.Cleanup(sub.Close)
	sub.Add(topics...)
	testkit.WaitFor(b, 30*time.Second, sub.Connected, "the senders' subscription")
	// Replies are opened on two goroutines, so that the senders' own
	// decryption is not what limits the rate.
	for range 2 {
		go func() {
			for env := range sub.Envelopes() {
				arrived := time.Now()
				c := l.byTopic[env.ContentTopic]
				if c == nil {
					continue
				}
				m, _, err := c.Handle(env)
				if err == nil && m == nil {
					l.mu.Lock()
					l.own[conversation.MessageID(env.Message)] = arrived
					l.mu.Unlock()
				}
				if err != nil || m == nil {
					continue
				}
				text, _ := m.Content.Text()
				key := strings.TrimPrefix(text, "echo: ")
				l.mu.Lock()
				if p, ok := l.pending[key]; ok {
					p.replyAt, p.arrived = time.Unix(0, int64(env.TimestampNs)), arrived
					close(p.done)
					delete(l.pending, key)
				}
				l.mu.Unlock()
			}
		}()
	}
	var wg sync.WaitGroup
	for i := range l.senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := l.roundTrip(fmt.Sprintf("warm-up %02d", i), i, 2*time.Minute); err != nil {
				b.Error(err)
			}
		}()
	}
	wg.Wait()
	if b.Failed() {
		b.FailNow()
	}
	return l
}

// roundTrip sends text from sender i and waits for its reply.
func (l *perfLoad) roundTrip(text string, i int, timeout time.Duration) (time.Duration, error) {
	p := &inFlight{done: make(chan struct{}), start: time.Now()}
	l.mu.Lock()
	l.pending[text] = p
	l.mu.Unlock()
	start := time.Now()
	ctx, cancel := context.WithTimeout(l.ctx, 30*time.Second)
	sent, err := l.senders[i%len(l.senders)].SendText(ctx, l.peer, text)
	cancel()
	if err != nil {
		return 0, fmt.Errorf("send %q: %w", text, err)
	}
	published := time.Now()
	select {
	case <-p.done:
		end := time.Now()
		l.mu.Lock()
		var node time.Duration
		if at, ok := l.own[sent.ID]; ok {
			node = at.Sub(published)
			delete(l.own, sent.ID)
		}
		l.stages = append(l.stages, stages{publish: published.Sub(start), peer: p.replyAt.Sub(published),
			back: p.arrived.Sub(p.replyAt), open: end.Sub(p.arrived), node: node})
		l.mu.Unlock()
		return end.Sub(start), nil
	case <-time.After(timeout):
		return 0, fmt.Errorf("no reply to %q within %s", text, timeout)
	}
}

// closed keeps inFlight messages in flight until total round trips are
// done, and returns the round trips per second and their latencies.
func (l *perfLoad) closed(tag string, inFlight, total int) (float64, []time.Duration) {
	l.b.Helper()
	var next atomic.Int64
	lat := make([]time.Duration, total)
	var failed atomic.Pointer[error] // the first error; errors differ in type
	var wg sync.WaitGroup
	l.mu.Lock()
	l.stages = nil
	l.mu.Unlock()
	stop := make(chan struct{})
	if l.onStall != nil {
		go l.watch(stop)
	}
	defer close(stop)
	start := time.Now()
	for range inFlight {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				k := int(next.Add(1) - 1)
				if k >= total || failed.Load() != nil {
					return
				}
				d, err := l.roundTrip(fmt.Sprintf("%s %06d", tag, k), k, 2*time.Minute)
				if err != nil {
					failed.CompareAndSwap(nil, &err)
					return
				}
				lat[k] = d
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	if err := failed.Load(); err != nil {
		l.b.Fatalf("%s: %v", tag, *err)
	}
	l.logStages(tag)
	return float64(total) / elapsed.Seconds(), lat
}

// paced sends total messages at a steady rate per second, each on its
// own, and returns their round-trip latencies.
func (l *perfLoad) paced(tag string, rate float64, total int) []time.Duration {
	l.b.Helper()
	lat := make([]time.Duration, total)
	var failed atomic.Pointer[error] // the first error; errors differ in type
	var wg sync.WaitGroup
	l.mu.Lock()
	l.stages = nil
	l.mu.Unlock()
	start := time.Now()
	for k := range total {
		time.Sleep(time.Until(start.Add(time.Duration(float64(k) / rate * float64(time.Second)))))
		wg.Add(1)
		go func() {
			defer wg.Done()
			d, err := l.roundTrip(fmt.Sprintf("%s %06d", tag, k), k, 2*time.Minute)
			if err != nil {
				failed.CompareAndSwap(nil, &err)
				return
			}
			lat[k] = d
		}()
	}
	wg.Wait()
	if err := failed.Load(); err != nil {
		l.b.Fatalf("%s: %v", tag, *err)
	}
	l.logStages(tag)
	return lat
}

// watch runs onStall once when a round trip waits over 2 s.
func (l *perfLoad) watch(stop chan struct{}) {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return
		case <-tick.C:
		}
		l.mu.Lock()
		var oldest time.Time
		for _, p := range l.pending {
			if oldest.IsZero() || p.start.Before(oldest) {
				oldest = p.start
			}
		}
		l.mu.Unlock()
		if !oldest.IsZero() && time.Since(oldest) > 2*time.Second {
			l.onStall()
			return
		}
	}
}

// dumpStall saves what the bridge node and Postgres are doing: the node's
// goroutines and the database's sessions and lock waits.
func dumpStall(b *testing.B, dir, db, pprofAddr string) {
	ts := time.Now().Format("150405.000")
	if resp, err := http.Get("http://" + pprofAddr + "/debug/pprof/goroutine?debug=1"); err == nil {
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		_ = os.WriteFile(dir+"/goroutines-"+ts+".txt", raw, 0o644)
	}
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, db)
	if err != nil {
		b.Logf("stall dump: %v", err)
		return
	}
	defer conn.Close(ctx)
	var out []string
	rows, err := conn.Query(ctx, `SELECT pid, coalesce(state, ''), coalesce(wait_event_type, ''), coalesce(wait_event, ''),
		coalesce(extract(epoch FROM now() - xact_start) * 1000, -1), coalesce(extract(epoch FROM now() - query_start) * 1000, -1),
		coalesce(pg_blocking_pids(pid)::text, ''), left(regexp_replace(query, '\s+', ' ', 'g'), 300)
		FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()`)
	if err == nil {
		for rows.Next() {
			var pid int
			var state, wt, we, blocking, query string
			var xact, q float64
			if err := rows.Scan(&pid, &state, &wt, &we, &xact, &q, &blocking, &query); err != nil {
				out = append(out, err.Error())
				break
			}
			out = append(out, fmt.Sprintf("pid %d %s wait %s/%s xact %.0fms query %.0fms blocked by %s: %s", pid, state, wt, we, xact, q, blocking, query))
		}
		rows.Close()
	} else {
		out = append(out, err.Error())
	}
	b.Logf("stall at %s: database sessions:\n%s", ts, strings.Join(out, "\n"))
	tableStats(b, conn, "at the stall")
}

// tableStats logs the planner's view of the tables of the hot path.
func tableStats(b *testing.B, conn *pgx.Conn, when string) {
	ctx := context.Background()
	rows, err := conn.Query(ctx, `SELECT relname, n_live_tup, n_dead_tup, coalesce(last_autoanalyze::text, 'never'), autoanalyze_count,
		coalesce((SELECT reltuples FROM pg_class c WHERE c.oid = s.relid), -2), coalesce((SELECT relpages FROM pg_class c WHERE c.oid = s.relid), -2)
		FROM pg_stat_user_tables s WHERE relname IN ('deliveries', 'delivery_attempts', 'reply_outbox', 'identity_leases', 'xmtp_envelopes') ORDER BY relname`)
	if err != nil {
		b.Logf("table stats: %v", err)
		return
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var name, analyzed string
		var live, dead, count int64
		var reltuples float64
		var relpages int64
		if err := rows.Scan(&name, &live, &dead, &analyzed, &count, &reltuples, &relpages); err != nil {
			b.Logf("table stats: %v", err)
			return
		}
		out = append(out, fmt.Sprintf("%s: live %d dead %d, autoanalyzed %s (%d times), planner sees %.0f rows in %d pages", name, live, dead, analyzed, count, reltuples, relpages))
	}
	b.Logf("tables %s (now %s):\n%s", when, time.Now().UTC().Format("15:04:05.000"), strings.Join(out, "\n"))
}

// logStages logs the p50 and p90 of each stage of the round trips since
// the last call, and forgets them.
func (l *perfLoad) logStages(tag string) {
	l.mu.Lock()
	st := l.stages
	l.stages = nil
	l.mu.Unlock()
	pick := func(f func(stages) time.Duration) string {
		d := make([]time.Duration, len(st))
		for i, s := range st {
			d[i] = f(s)
		}
		return fmt.Sprintf("p50 %.1f p90 %.1f p99 %.1f max %.1f", percentile(d, 50), percentile(d, 90), percentile(d, 99), percentile(d, 100))
	}
	l.b.Logf("%s stages (ms): publish %s; to the peer's reply %s (own copy back %s); reply back %s; open %s", tag,
		pick(func(s stages) time.Duration { return s.publish }), pick(func(s stages) time.Duration { return s.peer }),
		pick(func(s stages) time.Duration { return s.node }),
		pick(func(s stages) time.Duration { return s.back }), pick(func(s stages) time.Duration { return s.open }))
}

// bridgeStages logs, from the bridge's own rows, where the round trips
// sent since start spent their time inside the bridge: from the sender's
// seal to the delivery row's transaction, from there to the attempt's
// record, from there to the reply's record in the outbox, and to its
// publication.
func bridgeStages(b *testing.B, db, tag string, start time.Time) {
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, db)
	if err != nil {
		b.Logf("bridge stages: %v", err)
		return
	}
	defer conn.Close(ctx)
	const q = `WITH s AS (
	SELECT d.id,
		extract(epoch FROM d.created_at) * 1000 - d.sent_ns / 1e6 AS recorded,
		extract(epoch FROM a.created_at - d.created_at) * 1000 AS attempted,
		extract(epoch FROM r.created_at - a.created_at) * 1000 AS queued,
		extract(epoch FROM r.updated_at - r.created_at) * 1000 AS published
	FROM deliveries d
	JOIN LATERAL (SELECT min(created_at) AS created_at FROM delivery_attempts WHERE delivery_id = d.id) a ON true
	JOIN reply_outbox r ON r.delivery_id = d.id
	WHERE d.sent_ns >= $1)
	SELECT 'recorded', count(*), percentile_cont(0.5) WITHIN GROUP (ORDER BY recorded), percentile_cont(0.9) WITHIN GROUP (ORDER BY recorded), percentile_cont(0.99) WITHIN GROUP (ORDER BY recorded), max(recorded) FROM s
	UNION ALL SELECT 'attempted', count(*), percentile_cont(0.5) WITHIN GROUP (ORDER BY attempted), percentile_cont(0.9) WITHIN GROUP (ORDER BY attempted), percentile_cont(0.99) WITHIN GROUP (ORDER BY attempted), max(attempted) FROM s
	UNION ALL SELECT 'reply row', count(*), percentile_cont(0.5) WITHIN GROUP (ORDER BY queued), percentile_cont(0.9) WITHIN GROUP (ORDER BY queued), percentile_cont(0.99) WITHIN GROUP (ORDER BY queued), max(queued) FROM s
	UNION ALL SELECT 'published', count(*), percentile_cont(0.5) WITHIN GROUP (ORDER BY published), percentile_cont(0.9) WITHIN GROUP (ORDER BY published), percentile_cont(0.99) WITHIN GROUP (ORDER BY published), max(published) FROM s`
	rows, err := conn.Query(ctx, q, start.UnixNano())
	if err != nil {
		b.Logf("bridge stages: %v", err)
		return
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var name string
		var n int
		var p50, p90, p99, mx float64
		if err := rows.Scan(&name, &n, &p50, &p90, &p99, &mx); err != nil {
			b.Logf("bridge stages: %v", err)
			return
		}
		out = append(out, fmt.Sprintf("%s (%d): p50 %.1f p90 %.1f p99 %.1f max %.1f", name, n, p50, p90, p99, mx))
	}
	b.Logf("bridge-side stages of %s (ms, from its rows):\n%s", tag, strings.Join(out, "\n"))
}

// fetchProfile saves a CPU profile of d from the pprof server at addr.
func fetchProfile(addr, file string, d time.Duration) error {
	return fetchPprof(fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", addr, int(d.Seconds())), "cpu", file)
}

// fetchHeap saves a heap profile from the pprof server at addr.
func fetchHeap(addr, file string) error {
	return fetchPprof("http://"+addr+"/debug/pprof/heap", "heap", file)
}

// fetchPprof saves the profile a pprof server answers at url.
func fetchPprof(url, kind, file string) error {
	resp, err := http.Get(url)
	if err != nil {
		return fmt.Errorf("fetch %s profile: %w", kind, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("fetch %s profile: status %d", kind, resp.StatusCode)
	}
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("fetch %s profile: %w", kind, err)
	}
	return os.WriteFile(file, raw, 0o644)
}

// percentile returns the p-th percentile of lat in milliseconds.
func percentile(lat []time.Duration, p int) float64 {
	s := slices.Clone(lat)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	return float64(s[min(len(s)-1, len(s)*p/100)].Microseconds()) / 1000
}

// mallocs is the node's go_memstats_mallocs_total, the heap objects it
// has allocated since it started.
func mallocs(b *testing.B, api string) float64 {
	b.Helper()
	for _, line := range metric(b, api, "go_memstats_mallocs_total ") {
		if v, err := strconv.ParseFloat(strings.TrimPrefix(line, "go_memstats_mallocs_total "), 64); err == nil {
			return v
		}
	}
	b.Fatal("the node exports no go_memstats_mallocs_total")
	return 0
}
