package supervision

import (
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/xmtpbridge/bridge/internal/testkit"
)

// work is a keyed child message. The child panics on it while fails[key]
// is positive (decrementing it) and forever when poison is set.
type work struct {
	key    string
	poison bool
}

func (w work) Key() string { return w.key }

// crash is a message without a key that makes the child panic.
type crash struct{ n int }

// ledger is what a test child shares across its incarnations.
type ledger struct {
	mu       sync.Mutex
	fails    map[string]int
	done     []string
	attempts map[string]int
	starts   int
	// failStarts makes that many starts panic.
	failStarts int
	processed  chan string
}

func newLedger() *ledger {
	return &ledger{fails: map[string]int{}, attempts: map[string]int{}, processed: make(chan string, 1024)}
}

func (l *ledger) failTimes(key string, n int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.fails[key] = n
}

func (l *ledger) snapshot() ([]string, map[string]int, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	att := map[string]int{}
	for k, v := range l.attempts {
		att[k] = v
	}
	return append([]string(nil), l.done...), att, l.starts
}

type child struct{ l *ledger }

func (c *child) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started:
		c.l.mu.Lock()
		c.l.starts++
		fail := c.l.failStarts > 0
		if fail {
			c.l.failStarts--
		}
		c.l.mu.Unlock()
		if fail {
			panic("cannot start")
		}
	case work:
		c.l.mu.Lock()
		c.l.attempts[m.key]++
		fail := m.poison || c.l.fails[m.key] > 0
		if c.l.fails[m.key] > 0 {
			c.l.fails[m.key]--
		}
		if !fail {
			c.l.done = append(c.l.done, m.key)
		}
		c.l.mu.Unlock()
		if fail {
			panic("cannot handle " + m.key)
		}
		if ctx.Sender() != nil {
			ctx.Respond("done " + m.key)
		}
		c.l.processed <- m.key
	case crash:
		panic(fmt.Sprintf("crash %d", m.n))
	}
}

// identity is a stand-in for the identity actor: it spawns one handler
// child named "forward" and supervises it with its own Strategy.
type identity struct {
	strategy *Strategy
	l        *ledger
	spawned  chan *actor.PID
}

func (g *identity) Receive(ctx actor.Context) {
	switch ctx.Message().(type) {
	case string:
		ctx.Respond("pong")
	case *actor.Started:
		pid, err := ctx.SpawnNamed(actor.PropsFromProducer(func() actor.Actor { return &child{l: g.l} }), "forward")
		if err != nil {
			panic(err)
		}
		g.spawned <- pid
	case *actor.Stopping:
		g.strategy.Close()
	}
}

func (g *identity) HandleFailure(system *actor.ActorSystem, supervisor actor.Supervisor, pid *actor.PID,
	rs *actor.RestartStatistics, reason interface{}, message interface{}) {
	g.strategy.HandleFailure(system, supervisor, pid, rs, reason, message)
}

func newSystem(t *testing.T) *actor.ActorSystem {
	t.Helper()
	discard := slog.New(slog.DiscardHandler)
	system := actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger { return discard }))
	t.Cleanup(system.Shutdown)
	return system
}

// spawnIdentity starts an identity actor with cfg and returns its handler
// child and the child's ledger.
func spawnIdentity(t *testing.T, system *actor.ActorSystem, name string, cfg Config) (*actor.PID, *ledger, *Strategy) {
	t.Helper()
	cfg.Identity = name
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	s := New(cfg)
	l := newLedger()
	g := &identity{strategy: s, l: l, spawned: make(chan *actor.PID, 1)}
	if _, err := system.Root.SpawnNamed(actor.PropsFromProducer(func() actor.Actor { return g }), name); err != nil {
		t.Fatalf("spawn identity %s: %v", name, err)
	}
	select {
	case pid := <-g.spawned:
		return pid, l, s
	case <-time.After(10 * time.Second):
		t.Fatalf("identity %s did not spawn its handler", name)
		return nil, nil, nil
	}
}

// expectProcessed reads keys from the child's processed channel in order.
func expectProcessed(t *testing.T, l *ledger, keys ...string) {
	t.Helper()
	for _, want := range keys {
		select {
		case got := <-l.processed:
			if got != want {
				t.Fatalf("processed %q, want %q", got, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("message %q was not processed", want)
		}
	}
}

// recorder collects the restarts a strategy schedules.
type recorder struct {
	mu       sync.Mutex
	restarts []Restart
}

func (r *recorder) observe(x Restart) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.restarts = append(r.restarts, x)
}

func (r *recorder) list() []Restart {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Restart(nil), r.restarts...)
}

// sequence returns a Rand that yields us in turn, then repeats the last.
func sequence(us ...float64) func() float64 {
	var mu sync.Mutex
	i := 0
	return func() float64 {
		mu.Lock()
		defer mu.Unlock()
		u := us[min(i, len(us)-1)]
		i++
		return u
	}
}

func TestRestartBackoffGrowsCappedAndJittered(t *testing.T) {
	system := newSystem(t)
	reg := prometheus.NewRegistry()
	metrics, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	us := []float64{0, 0.5, 0.999, 0.25, 0.75, 0.1, 0.6}
	cfg := Config{
		Backoff: Backoff{Initial: time.Millisecond, Max: 8 * time.Millisecond, Multiplier: 2, Jitter: 0.5},
		Rand:    sequence(us...), Observe: rec.observe, Metrics: metrics,
	}
	pid, l, _ := spawnIdentity(t, system, "identity-a", cfg)

	const crashes = 7
	for i := 0; i < crashes; i++ {
		system.Root.Send(pid, crash{n: i})
	}
	restarts := func() float64 { return counterValue(metrics.restarts.WithLabelValues("forward")) }
	testkit.WaitFor(t, 10*time.Second, func() bool { return restarts() == crashes }, "seven restarts")

	nominal := []time.Duration{1, 2, 4, 8, 8, 8, 8}
	got := rec.list()
	if len(got) != crashes {
		t.Fatalf("strategy scheduled %d restarts, want %d", len(got), crashes)
	}
	for i, r := range got {
		n := nominal[i] * time.Millisecond
		want := n - time.Duration(float64(n)*0.5*us[i])
		if r.Attempt != i+1 || r.Delay != want || r.Handler != "forward" || r.Redeliver || r.Quarantine {
			t.Errorf("restart %d = %+v, want attempt %d delay %v handler forward, no redelivery", i, r, i+1, want)
		}
		if r.Delay > n || r.Delay < n/2 {
			t.Errorf("restart %d delay %v outside [%v, %v]", i, r.Delay, n/2, n)
		}
	}

	system.Root.Send(pid, work{key: "after"})
	expectProcessed(t, l, "after")
	_, _, starts := l.snapshot()
	if starts != crashes+1 {
		t.Fatalf("child started %d times, want %d", starts, crashes+1)
	}
}

func TestBackoffDelayWithRealJitterStaysInBounds(t *testing.T) {
	b := Backoff{Initial: 10 * time.Millisecond, Max: time.Second, Multiplier: 2, Jitter: 0.3}
	s := New(Config{Backoff: b})
	prev := time.Duration(0)
	for n := 1; n <= 12; n++ {
		nominal := b.Nominal(n)
		if nominal < prev {
			t.Fatalf("nominal delay shrank at %d: %v < %v", n, nominal, prev)
		}
		if nominal > b.Max {
			t.Fatalf("nominal delay %v above cap %v", nominal, b.Max)
		}
		prev = nominal
		for i := 0; i < 100; i++ {
			d := b.Delay(n, s.cfg.Rand())
			if d > nominal || d < nominal-time.Duration(float64(nominal)*0.3) {
				t.Fatalf("delay %v for attempt %d outside [0.7·%v, %v]", d, n, nominal, nominal)
			}
		}
	}
	if got := b.Nominal(1000); got != b.Max {
		t.Fatalf("nominal delay at attempt 1000 = %v, want the cap %v", got, b.Max)
	}
}

func TestTransientFailureIsRedeliveredToTheSameRequester(t *testing.T) {
	system := newSystem(t)
	rec := &recorder{}
	pid, l, _ := spawnIdentity(t, system, "identity-a", Config{
		Backoff: Backoff{Initial: time.Millisecond, Max: 4 * time.Millisecond}, Observe: rec.observe,
	})
	l.failTimes("flaky", 2)
	res, err := system.Root.RequestFuture(pid, work{key: "flaky"}, 10*time.Second).Result()
	if err != nil {
		t.Fatalf("request after two failures: %v", err)
	}
	if res != "done flaky" {
		t.Fatalf("response %v, want %q", res, "done flaky")
	}
	expectProcessed(t, l, "flaky")
	done, attempts, _ := l.snapshot()
	if attempts["flaky"] != 3 || len(done) != 1 {
		t.Fatalf("attempts %v, done %v: want three attempts, one success", attempts, done)
	}
	for i, r := range rec.list() {
		if !r.Redeliver || r.Quarantine || r.Key != "flaky" || r.Attempt != i+1 {
			t.Errorf("restart %d = %+v, want a redelivery of flaky", i, r)
		}
	}
}

func TestPoisonMessageIsQuarantinedAndLaterMessagesProceed(t *testing.T) {
	system := newSystem(t)
	reg := prometheus.NewRegistry()
	metrics, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu          sync.Mutex
		quarantined []Quarantined
	)
	pid, l, _ := spawnIdentity(t, system, "identity-a", Config{
		Backoff:         Backoff{Initial: time.Millisecond, Max: 4 * time.Millisecond},
		PoisonThreshold: 3,
		Metrics:         metrics,
		Quarantine: func(q Quarantined) {
			mu.Lock()
			defer mu.Unlock()
			quarantined = append(quarantined, q)
		},
	})

	system.Root.Send(pid, work{key: "poison", poison: true})
	for i := 0; i < 5; i++ {
		system.Root.Send(pid, work{key: fmt.Sprintf("good-%d", i)})
	}
	testkit.WaitFor(t, 10*time.Second, func() bool {
		return counterValue(metrics.quarantined.WithLabelValues("forward")) == 1
	}, "the quarantine")
	// Messages sent after the quarantine go through as well.
	system.Root.Send(pid, work{key: "later"})
	got := map[string]int{}
	for len(got) < 6 {
		select {
		case k := <-l.processed:
			got[k]++
		case <-time.After(10 * time.Second):
			t.Fatalf("only %v were processed", got)
		}
	}
	for _, k := range []string{"good-0", "good-1", "good-2", "good-3", "good-4", "later"} {
		if got[k] != 1 {
			t.Errorf("%s processed %d times, want once", k, got[k])
		}
	}
	_, attempts, _ := l.snapshot()
	if attempts["poison"] != 3 {
		t.Errorf("poison tried %d times, want 3", attempts["poison"])
	}
	mu.Lock()
	defer mu.Unlock()
	if len(quarantined) != 1 {
		t.Fatalf("quarantined %d messages, want 1", len(quarantined))
	}
	q := quarantined[0]
	if q.Key != "poison" || q.Failures != 3 || q.Handler != "forward" || q.Identity != "identity-a" ||
		!strings.Contains(q.Reason, "cannot handle poison") {
		t.Fatalf("quarantined %+v", q)
	}
	if w, ok := q.Message.(work); !ok || w.key != "poison" {
		t.Fatalf("quarantined message %#v, want the poison work", q.Message)
	}
	if r := counterValue(metrics.restarts.WithLabelValues("forward")); r != 3 {
		t.Fatalf("restarts = %v, want 3", r)
	}
}

func TestTwoPoisonMessagesInterleavedAreBothQuarantined(t *testing.T) {
	system := newSystem(t)
	var mu sync.Mutex
	keys := map[string]int{}
	pid, l, _ := spawnIdentity(t, system, "identity-a", Config{
		Backoff: Backoff{Initial: time.Millisecond, Max: 2 * time.Millisecond}, PoisonThreshold: 2,
		Quarantine: func(q Quarantined) {
			mu.Lock()
			defer mu.Unlock()
			keys[q.Key]++
		},
	})
	system.Root.Send(pid, work{key: "p1", poison: true})
	system.Root.Send(pid, work{key: "p2", poison: true})
	system.Root.Send(pid, work{key: "ok"})
	expectProcessed(t, l, "ok")
	testkit.WaitFor(t, 10*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return keys["p1"] == 1 && keys["p2"] == 1
	}, "both quarantines")
}

func TestQuietPeriodResetsBackoff(t *testing.T) {
	system := newSystem(t)
	rec := &recorder{}
	var (
		clockMu sync.Mutex
		now     = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	)
	clock := func() time.Time {
		clockMu.Lock()
		defer clockMu.Unlock()
		return now
	}
	advance := func(d time.Duration) {
		clockMu.Lock()
		defer clockMu.Unlock()
		now = now.Add(d)
	}
	pid, l, _ := spawnIdentity(t, system, "identity-a", Config{
		Backoff:    Backoff{Initial: time.Millisecond, Max: 8 * time.Millisecond, Jitter: 0},
		ResetAfter: time.Minute, Now: clock, Observe: rec.observe,
	})
	crashAndRecover := func(n int, marker string) {
		for i := 0; i < n; i++ {
			system.Root.Send(pid, crash{n: i})
		}
		system.Root.Send(pid, work{key: marker})
		expectProcessed(t, l, marker)
	}
	crashAndRecover(3, "m1")
	advance(30 * time.Second) // not quiet long enough
	crashAndRecover(1, "m2")
	advance(2 * time.Minute) // quiet
	crashAndRecover(2, "m3")

	var attempts []int
	var delays []time.Duration
	for _, r := range rec.list() {
		attempts = append(attempts, r.Attempt)
		delays = append(delays, r.Delay)
	}
	wantAttempts := []int{1, 2, 3, 4, 1, 2}
	wantDelays := []time.Duration{1, 2, 4, 8, 1, 2}
	if fmt.Sprint(attempts) != fmt.Sprint(wantAttempts) {
		t.Fatalf("attempts %v, want %v", attempts, wantAttempts)
	}
	for i := range wantDelays {
		if delays[i] != wantDelays[i]*time.Millisecond {
			t.Fatalf("delays %v, want %v ms", delays, wantDelays)
		}
	}
}

func TestSiblingIdentityKeepsProcessingWhileAnotherFails(t *testing.T) {
	system := newSystem(t)
	reg := prometheus.NewRegistry()
	metrics, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	siblingDone := make(chan struct{})
	released := make(chan struct{})
	pidA, la, _ := spawnIdentity(t, system, "identity-a", Config{
		Backoff: Backoff{Initial: time.Millisecond, Max: 2 * time.Millisecond}, PoisonThreshold: 3, Metrics: metrics,
		Quarantine: func(Quarantined) {
			// Hold identity A's child down until identity B has done all
			// its work: B must not wait for A.
			select {
			case <-siblingDone:
			case <-time.After(10 * time.Second):
			}
			close(released)
		},
	})
	pidB, lb, _ := spawnIdentity(t, system, "identity-b", Config{Metrics: metrics})

	system.Root.Send(pidA, work{key: "poison", poison: true})
	system.Root.Send(pidA, work{key: "a-after"})
	const n = 200
	go func() {
		for i := 0; i < n; i++ {
			system.Root.Send(pidB, work{key: fmt.Sprintf("b-%d", i)})
			if i == n/2 {
				system.Root.Send(pidA, crash{n: i})
			}
		}
	}()
	for i := 0; i < n; i++ {
		expectProcessed(t, lb, fmt.Sprintf("b-%d", i))
	}
	select {
	case <-released:
		t.Fatal("identity A's quarantine finished before identity B processed its messages")
	default:
	}
	close(siblingDone)
	expectProcessed(t, la, "a-after")
	<-released
	_, _, startsB := lb.snapshot()
	if startsB != 1 {
		t.Fatalf("identity B's child started %d times, want once", startsB)
	}
}

func TestBackoffDoesNotBlockSupervisorAndCloseCancels(t *testing.T) {
	system := newSystem(t)
	pid, _, s := spawnIdentity(t, system, "identity-a", Config{
		Backoff: Backoff{Initial: time.Hour, Max: time.Hour},
	})
	system.Root.Send(pid, crash{})
	testkit.WaitFor(t, 10*time.Second, func() bool { return s.Pending() == 1 }, "a pending restart")
	// The identity actor answers while its child waits for its restart:
	// the backoff does not block the supervisor's mailbox.
	res, err := system.Root.RequestFuture(actor.NewPID(system.Address(), "identity-a"), "ping", 10*time.Second).Result()
	if err != nil || res != "pong" {
		t.Fatalf("identity actor during the backoff: %v, %v", res, err)
	}
	s.Close()
	if s.Pending() != 0 {
		t.Fatalf("pending restarts after Close = %d", s.Pending())
	}
}

func TestMetricsRegisterOnce(t *testing.T) {
	reg := prometheus.NewRegistry()
	if _, err := NewMetrics(reg); err != nil {
		t.Fatal(err)
	}
	if _, err := NewMetrics(reg); err == nil {
		t.Fatal("registering the metrics twice on one registry succeeded")
	}
}

// counterValue reads a counter's current value.
func counterValue(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		panic(err)
	}
	return m.GetCounter().GetValue()
}

func TestChildFailingToStartIsRestartedWithBackoff(t *testing.T) {
	system := newSystem(t)
	rec := &recorder{}
	pid, l, _ := spawnIdentity(t, system, "identity-a", Config{
		Backoff: Backoff{Initial: time.Millisecond, Max: 4 * time.Millisecond, Jitter: 0}, Observe: rec.observe,
	})
	l.mu.Lock()
	l.failStarts = 4
	l.mu.Unlock()
	system.Root.Send(pid, crash{})
	system.Root.Send(pid, work{key: "after"})
	expectProcessed(t, l, "after")
	var delays []time.Duration
	for _, r := range rec.list() {
		delays = append(delays, r.Delay)
	}
	want := []time.Duration{1, 2, 4, 4, 4}
	if len(delays) != len(want) {
		t.Fatalf("delays %v, want %v ms", delays, want)
	}
	for i := range want {
		if delays[i] != want[i]*time.Millisecond {
			t.Fatalf("delays %v, want %v ms", delays, want)
		}
	}
	_, _, starts := l.snapshot()
	if starts != 6 {
		t.Fatalf("child started %d times, want 6 (one spawn, five restarts)", starts)
	}
}
