package e2e

import (
	"context"
	"encoding/base64"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/xmtpbridge/bridge/actors/webhook/webhooktest"
	"github.com/xmtpbridge/bridge/internal/freeport"
	"github.com/xmtpbridge/bridge/internal/testkit"
	"github.com/xmtpbridge/bridge/persistence"
	"github.com/xmtpbridge/bridge/persistence/pgtest"
	"github.com/xmtpbridge/bridge/xmtp/api"
	"github.com/xmtpbridge/bridge/xmtp/client"
	"github.com/xmtpbridge/bridge/xmtp/keys"
	"github.com/xmtpbridge/bridge/xmtp/node"
)

// scaleApp is the application_name of the bridge node's Postgres
// connections in BenchmarkIdleScale, by which its backends are told from
// the XMTP node's and anyone else's on a shared server.
const scaleApp = "bridge-scale-bench"

// scaleXMTPApp is the application_name of the XMTP node's Postgres
// connections in BenchmarkIdleScale.
const scaleXMTPApp = "xmtp-scale-bench"

// BenchmarkIdleScale prints goal 4 of issue 12 in one run: N identities
// (SCALE_IDENTITIES, required; `make bench` passes 10000) on one
// `bridge node` process with the defaults a new user gets, a separate
// `bridge xmtp-node` process and an HTTP echo target:
//
//   - hosted: the time from the node's start until it hosts all N;
//   - hosting CPU: the CPU that took, per identity, in the node, the XMTP
//     node and the Postgres backends of each (by application_name);
//   - idle CPU: the node process's CPU plus that of the Postgres backends
//     of its connections (by application_name, from /proc), over a quiet
//     window (IDLE_WINDOW, default 30s), against the same with one
//     identity, measured first in the same run;
//   - RSS per identity: the node's RSS with N identities minus its RSS
//     with one, divided by N-1;
//   - a random sample of 200 identities each answers a message.
//
// IDLE_CPU_PROFILE=<prefix> saves a 30 s CPU profile of the idle node with
// one identity (<prefix>-1.pprof) and with N (<prefix>-N.pprof), taken
// after each window, a heap profile with N (<prefix>-N.heap), and CPU
// profiles from the start of hosting N of the node
// (<prefix>-N-hosting.pprof) and of the XMTP node
// (<prefix>-N-xmtp-hosting.pprof), through BRIDGE_PPROF_ADDR. The hosting
// profiles last HOSTING_PROFILE (default 60s); make it about the hosting
// time to profile nothing but hosting.
func BenchmarkIdleScale(b *testing.B) {
	n, err := strconv.Atoi(os.Getenv("SCALE_IDENTITIES"))
	if err != nil || n < 2 {
		b.Skip("SCALE_IDENTITIES (at least 2) sets the identities; make bench passes it")
	}
	window := 30 * time.Second
	if d, err := time.ParseDuration(os.Getenv("IDLE_WINDOW")); err == nil && d > 0 {
		window = d
	}
	profile := os.Getenv("IDLE_CPU_PROFILE")
	hostingFor := 60 * time.Second
	if d, err := time.ParseDuration(os.Getenv("HOSTING_PROFILE")); err == nil && d >= time.Second {
		hostingFor = d
	}
	db := pgtest.NewDatabase(b, template)
	pprofAddr, xmtpPprofAddr := freeport.Addr(b), freeport.Addr(b)
	sep := "?"
	if strings.Contains(db, "?") {
		sep = "&"
	}
	// The defaults a new user gets, not the e2e harness's fast timers.
	tune := map[string]string{"BRIDGE_LOG_LEVEL": "warn", "BRIDGE_SWEEP_INTERVAL": "5s", "BRIDGE_LEASE_TTL": "15s",
		"BRIDGE_RECONCILE_INTERVAL": "15s", "BRIDGE_PPROF_ADDR": pprofAddr, xmtpOnly + "BRIDGE_PPROF_ADDR": xmtpPprofAddr,
		xmtpOnly + "BRIDGE_XMTP_NODE_MAX_CONNS": strconv.Itoa(node.DefaultMaxConns),
		xmtpOnly + "DATABASE_URL":               db + sep + "application_name=" + scaleXMTPApp,
		"DATABASE_URL":                          db + sep + "application_name=" + scaleApp}
	c := prepareCluster(b, db, tune)
	ctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(cancel)

	// The bridges are written straight into the store, sealed with the
	// node's master key: the API would take longer than the benchmark.
	key, err := base64.StdEncoding.DecodeString(c.env["BRIDGE_MASTER_KEY"])
	if err != nil {
		b.Fatal(err)
	}
	sealer, err := persistence.NewSealer(persistence.MasterKey{ID: "k1", Key: key})
	if err != nil {
		b.Fatal(err)
	}
	store, err := persistence.Open(ctx, db, sealer)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(store.Close)
	acct, _, _, err := store.CreateAccount(ctx, "scale")
	if err != nil {
		b.Fatal(err)
	}
	tg := webhooktest.NewTarget(b, persistence.FormatJSON)
	addrs := createScaleBridges(b, ctx, store, tg, acct.ID, 0, 1)

	b.ResetTimer()
	// The baseline: one identity.
	c.startNode()
	waitHosted(b, c, 1, 2*time.Minute)
	time.Sleep(10 * time.Second)
	base := measureIdle(b, ctx, c, db, window)
	if profile != "" {
		if err := fetchProfile(pprofAddr, profile+"-1.pprof", 30*time.Second); err != nil {
			b.Fatal(err)
		}
	}
	if code := signalStop(b, c); code != 0 {
		b.Fatalf("bridge node exited %d on SIGTERM", code)
	}

	addrs = append(addrs, createScaleBridges(b, ctx, store, tg, acct.ID, 1, n-1)...)
	// The node's Postgres backends all start with it; the XMTP node's
	// run already.
	pgConn, err := pgx.Connect(ctx, db)
	if err != nil {
		b.Fatal(err)
	}
	defer pgConn.Close(context.Background())
	xmtpPG0 := backendCPU(b, ctx, pgConn, scaleXMTPApp)
	start := time.Now()
	c.startNode()
	xmtpCPU0 := cpuTime(b, c.xmtpNode.cmd.Process.Pid)
	hostingProfile := make(chan error, 2)
	if profile != "" {
		// The start of hosting, while the node activates identities.
		go func() {
			hostingProfile <- fetchProfile(pprofAddr, fmt.Sprintf("%s-%d-hosting.pprof", profile, n), hostingFor)
		}()
		go func() {
			hostingProfile <- fetchProfile(xmtpPprofAddr, fmt.Sprintf("%s-%d-xmtp-hosting.pprof", profile, n), hostingFor)
		}()
	}
	waitHosted(b, c, n, 30*time.Minute)
	hosted := time.Since(start)
	// The CPU the hosting took, less noisy than its wall time on a shared
	// machine: the node's (from its start), and the XMTP node's.
	nodeCPU := cpuTime(b, c.node.cmd.Process.Pid)
	xmtpCPU := cpuTime(b, c.xmtpNode.cmd.Process.Pid) - xmtpCPU0
	var nodePG, xmtpPG time.Duration
	for _, t := range backendCPU(b, ctx, pgConn, scaleApp) {
		nodePG += t
	}
	for p, t := range backendCPU(b, ctx, pgConn, scaleXMTPApp) {
		xmtpPG += t - xmtpPG0[p] // a backend started meanwhile counts from 0
	}
	if profile != "" {
		for range 2 {
			if err := <-hostingProfile; err != nil {
				b.Fatal(err)
			}
		}
	}
	// Activations publish contacts and query topics; the node settles.
	time.Sleep(20 * time.Second)
	full := measureIdle(b, ctx, c, db, window)
	if profile != "" {
		if err := fetchProfile(pprofAddr, fmt.Sprintf("%s-%d.pprof", profile, n), 30*time.Second); err != nil {
			b.Fatal(err)
		}
		if err := fetchHeap(pprofAddr, fmt.Sprintf("%s-%d.heap", profile, n)); err != nil {
			b.Fatal(err)
		}
	}
	answered := sampleAnswers(b, ctx, c, addrs, 200)
	b.StopTimer()

	total := full.node + full.pg
	perID := float64(full.rss-base.rss) / float64(n-1) / 1024
	fmt.Printf("goal 4, hosted: %d identities hosted %.1f s after the node started; goal <= 120 s; ratio %.2f\n",
		n, hosted.Seconds(), hosted.Seconds()/120)
	perIdentity := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 / float64(n) }
	fmt.Printf("goal 4, hosting CPU: %.2f ms per identity in the node, %.2f ms in the XMTP node, %.2f ms in the node's Postgres backends, %.2f ms in the XMTP node's (%d identities)\n",
		perIdentity(nodeCPU), perIdentity(xmtpCPU), perIdentity(nodePG), perIdentity(xmtpPG), n)
	fmt.Printf("goal 4, idle CPU: %.1f ms/s (node %.1f + postgres %.1f) with %d identities; baseline with 1 identity %.1f ms/s (node %.1f + postgres %.1f); goal <= 50 ms/s; ratio %.2f\n",
		total, full.node, full.pg, n, base.node+base.pg, base.node, base.pg, total/50)
	fmt.Printf("goal 4, RSS: %.1f KB per identity above the one-identity baseline (%.1f MB with 1, %.1f MB with %d); goal <= 10 KB; ratio %.2f\n",
		perID, float64(base.rss)/(1<<20), float64(full.rss)/(1<<20), n, perID/10)
	fmt.Printf("goal 4, sample: %d of %d random identities answered a message; goal 200 of 200; ratio %.2f\n",
		answered, min(200, n), float64(answered)/float64(min(200, n)))
	b.ReportMetric(hosted.Seconds(), "g4-hosted-s")
	b.ReportMetric(total, "g4-idle-ms/s")
	b.ReportMetric(perID, "g4-KB/identity")
	b.ReportMetric(float64(answered), "g4-answered")
	b.ReportMetric(0, "ns/op")
	if answered < min(200, n) {
		b.Errorf("only %d of the sample answered", answered)
	}
}

// createScaleBridges creates count bridges, the first numbered from,
// forwarding to the echo target on hooks of their own, and returns their
// addresses.
func createScaleBridges(b *testing.B, ctx context.Context, store *persistence.Store, tg *webhooktest.Target, accountID string, from, count int) []string {
	b.Helper()
	out := make([]string, count)
	var next atomic.Int64
	var wg sync.WaitGroup
	var failed atomic.Value
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= count {
					return
				}
				k, err := keys.Generate()
				if err != nil {
					failed.Store(err)
					return
				}
				raw, err := k.Marshal()
				if err != nil {
					failed.Store(err)
					return
				}
				slug := fmt.Sprintf("s%d", from+i)
				_, secrets, err := store.CreateBridge(ctx, persistence.NewBridge{
					AccountID: accountID, Address: k.Address(), Name: slug, KeyBundle: raw,
					Forward: persistence.ForwardConfig{URL: tg.URL + "/hook/" + slug, BodyFormat: persistence.FormatJSON,
						ReplyMode: persistence.ReplyReply, Timeout: 5 * time.Second, MaxConcurrency: 64},
				})
				if err != nil {
					failed.Store(err)
					return
				}
				tg.SetHookSecret(slug, secrets.WebhookSecret)
				out[i] = k.Address()
			}
		}()
	}
	wg.Wait()
	if err, ok := failed.Load().(error); ok {
		b.Fatalf("create bridges: %v", err)
	}
	return out
}

// waitHosted waits until the node hosts n identities. It looks four times
// a second: a scrape of the node's metrics costs the node CPU, which the
// hosting figure should not carry.
func waitHosted(b *testing.B, c *cluster, n int, timeout time.Duration) {
	b.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if c.node.exited() {
			b.Fatalf("bridge node exited: %v\n%s", c.node.err, testkit.Tail(c.node.errs.String(), 4000))
		}
		for _, line := range metric(b, c.api, "bridge_actor_hosted_identities") {
			f := strings.Fields(line)
			if v, err := strconv.ParseFloat(f[len(f)-1], 64); err == nil && int(v) >= n {
				return
			}
		}
		if time.Now().After(deadline) {
			b.Fatalf("timed out after %s waiting for %d identities hosted", timeout, n)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// signalStop stops the node with SIGTERM and returns its exit code.
func signalStop(b *testing.B, c *cluster) int {
	b.Helper()
	if err := c.node.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		b.Fatal(err)
	}
	return c.node.wait(2 * time.Minute)
}

type idleFigures struct {
	node, pg float64 // CPU in ms/s
	rss      int64   // the node's, in bytes
}

// measureIdle measures the node's CPU and that of its Postgres backends
// over window, and the node's RSS at its end.
func measureIdle(b *testing.B, ctx context.Context, c *cluster, db string, window time.Duration) idleFigures {
	b.Helper()
	conn, err := pgx.Connect(ctx, db)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close(context.Background())
	pid := c.node.cmd.Process.Pid
	pg0 := backendCPU(b, ctx, conn, scaleApp)
	node0, t0 := cpuTime(b, pid), time.Now()
	time.Sleep(window)
	pg1 := backendCPU(b, ctx, conn, scaleApp)
	node1, elapsed := cpuTime(b, pid), time.Since(t0)
	var pg time.Duration
	for p, t := range pg1 {
		pg += t - pg0[p] // a backend started in the window counts from 0
	}
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 / elapsed.Seconds() }
	return idleFigures{node: ms(node1 - node0), pg: ms(pg), rss: rssOf(b, pid)}
}

// backendCPU returns the CPU time so far of each Postgres backend of the
// connections named app (scaleApp: the node's).
func backendCPU(b *testing.B, ctx context.Context, conn *pgx.Conn, app string) map[int]time.Duration {
	b.Helper()
	rows, err := conn.Query(ctx, `SELECT pid FROM pg_stat_activity WHERE application_name = $1`, app)
	if err != nil {
		b.Fatal(err)
	}
	pids, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil {
		b.Fatal(err)
	}
	out := map[int]time.Duration{}
	for _, p := range pids {
		if _, err := os.Stat(fmt.Sprintf("/proc/%d/stat", p)); err != nil {
			continue // ended meanwhile
		}
		out[int(p)] = cpuTime(b, int(p))
	}
	return out
}

// rssOf returns the process's resident set size in bytes.
func rssOf(b *testing.B, pid int) int64 {
	b.Helper()
	v, err := testkit.RSS(pid)
	if err != nil {
		b.Fatal(err)
	}
	return v
}

// sampleAnswers messages k random identities, each from a new Go client,
// 16 at a time, and returns how many answered within two minutes.
func sampleAnswers(b *testing.B, ctx context.Context, c *cluster, addrs []string, k int) int {
	b.Helper()
	xc, err := api.Dial(ctx, c.xmtpGRPC)
	if err != nil {
		b.Fatalf("dial xmtp node: %v", err)
	}
	pick := rand.Perm(len(addrs))[:min(k, len(addrs))]
	var answered atomic.Int64
	sem := make(chan struct{}, 16)
	var wg sync.WaitGroup
	for _, i := range pick {
		wg.Add(1)
		sem <- struct{}{}
		go func(addr string) {
			defer wg.Done()
			defer func() { <-sem }()
			if answers(ctx, xc, addr) {
				answered.Add(1)
			} else {
				b.Logf("no answer from %s", addr)
			}
		}(addrs[i])
	}
	wg.Wait()
	return int(answered.Load())
}

// answers sends addr a message from a new client and reports whether the
// echo's reply came back within two minutes.
func answers(ctx context.Context, xc *api.Client, addr string) bool {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	k, err := keys.Generate()
	if err != nil {
		return false
	}
	cl, err := client.New(client.Config{Bundle: k, API: xc})
	if err != nil || cl.Start(ctx) != nil {
		return false
	}
	sent, err := cl.SendText(ctx, addr, "sample")
	if err != nil {
		return false
	}
	for ctx.Err() == nil {
		ms, err := cl.Messages(ctx, sent.Topic)
		if err == nil {
			for _, m := range ms {
				if strings.EqualFold(m.Sender, addr) {
					return true
				}
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(500 * time.Millisecond):
		}
	}
	return false
}
