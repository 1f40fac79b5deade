package actors

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	protocluster "github.com/asynkron/protoactor-go/cluster"
	"github.com/asynkron/protoactor-go/eventstream"
	"github.com/asynkron/protoactor-go/remote"

	"github.com/xmtpbridge/bridge/actors/actorpb"
	"github.com/xmtpbridge/bridge/actors/supervision"
	"github.com/xmtpbridge/bridge/cluster"
	"github.com/xmtpbridge/bridge/persistence"
	"github.com/xmtpbridge/bridge/xmtp/api"
	"github.com/xmtpbridge/bridge/xmtp/content"
)

// Runtime is the actor runtime of one node. Start it once and Stop it once.
type Runtime struct {
	cfg         Config
	log         *slog.Logger
	metrics     *metrics
	breaker     *breaker
	replyOrder  *replyOrder
	supervision *supervision.Metrics
	// quarantineLog samples the log lines of rejected input.
	quarantineLog *logSampler

	system  *actor.ActorSystem
	root    *actor.RootContext
	ingress *ingress
	// cluster is this node's member of the cluster: placement, leases,
	// drain (cluster.Node).
	cluster Cluster
	// invitationLog samples the log lines of refused invitations, one
	// per invitationLogPeriod for the whole node.
	invitationLog *logSampler
	// loops limits automatic replies per conversation; loopLog samples
	// the log lines of replies it held back.
	loops   *loopGuard
	loopLog *logSampler
	// failing holds the node's replies whose publish failed, for the
	// oldest-failing gauge.
	failing failingReplies
	// commits writes the node's inbound deliveries in batches (commit.go).
	commits *committer
	// fresh and earlySecrets are the node's fresh messages and the
	// webhook secrets its record statements read, for early attempts
	// (early.go).
	fresh        earlyFresh
	earlySecrets earlySecrets
	// earlyPaused starts no call early while set; tests set it.
	earlyPaused atomic.Bool
	// starts reads what the node's attempts start from in batches
	// (batcher.go).
	starts *batcher[persistence.AttemptKey, persistence.AttemptStarted]
	// completes records the node's successful attempts, with their
	// replies, in batches (batcher.go).
	completes *batcher[completeRequest, persistence.Completed]
	// cursors writes the node's cursor moves in batches (cursor.go).
	cursors *batcher[cursorMove, error]
	// leases takes the leases of the node's activations in batches, and
	// states reads their bridges' states in batches (activate_batch.go).
	leases *batcher[leaseCall, persistence.LeaseResult]
	states *batcher[string, persistence.ActivationStateResult]
	// contacts records the contacts the activations published, in
	// batches (activate_batch.go).
	contacts *batcher[persistence.ContactPublished, error]
	// due wakes the forward children of bridges with work due (due.go).
	due *scheduler
	// workers runs the node's mailboxes, attempts and batch drains on
	// goroutines with warm stacks (workers.go).
	workers *workers
	// events keeps the node's LISTEN connection (events.go).
	events *events
	// deadLetterSub counts protoactor's dead letters
	// (bridge_actor_undelivered_messages_total).
	deadLetterSub *eventstream.Subscription

	mu      sync.Mutex
	active  map[string]*activation
	bridges map[string]persistence.Bridge
	// bridgesGen counts the forgetBridge calls of each bucket of bridge
	// ids (genBucket): a copy read while its bucket's count moved is not
	// kept. Buckets, so that one bridge changed over and over keeps only
	// its own bucket's copies from being kept.
	bridgesGen [64]uint64
}

// genBucket is the bridgesGen bucket of a bridge id (FNV-1a).
func genBucket(bridgeID string) int {
	h := uint32(2166136261)
	for i := 0; i < len(bridgeID); i++ {
		h = (h ^ uint32(bridgeID[i])) * 16777619
	}
	return int(h % 64)
}

// New checks cfg and registers the runtime's metrics.
func New(cfg Config) (*Runtime, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	rt := &Runtime{cfg: cfg, log: cfg.Logger, active: map[string]*activation{}, bridges: map[string]persistence.Bridge{},
		quarantineLog: newLogSampler(quarantineLogWindow, quarantineLogKeys),
		invitationLog: newLogSampler(invitationLogPeriod, 1), loops: newLoopGuard(cfg.ReplyLoopLimit, time.Minute),
		loopLog: newLogSampler(invitationLogPeriod, 1), replyOrder: newReplyOrder()}
	rt.due = newScheduler(rt)
	rt.workers = newWorkers(maxParkedWorkers)
	rt.commits = newCommitter(cfg.Store, rt.workers.Go, func(d time.Duration) { rt.metrics.recordStatement.Observe(d.Seconds()) })
	rt.commits.b.panicked = rt.panicked("commits")
	rt.starts = &batcher[persistence.AttemptKey, persistence.AttemptStarted]{max: maxAttemptBatch, spawn: rt.workers.Go, panicked: rt.panicked("starts"),
		run: func(keys []persistence.AttemptKey) []persistence.AttemptStarted {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			return cfg.Store.StartAttempts(ctx, keys)
		},
		fail: func(err error) persistence.AttemptStarted { return persistence.AttemptStarted{Err: err} }}
	rt.completes = &batcher[completeRequest, persistence.Completed]{max: maxAttemptBatch, spawn: rt.workers.Go, panicked: rt.panicked("completes"),
		depth: completeDepth, key: completeKey, deliver: handOverCompleted,
		run: func(reqs []completeRequest) []persistence.Completed {
			began := time.Now()
			res := completeBatch(cfg.Store, reqs)
			rt.metrics.completeStatement.Observe(time.Since(began).Seconds())
			return res
		},
		fail: func(err error) persistence.Completed { return persistence.Completed{Err: err} }}
	rt.cursors = &batcher[cursorMove, error]{max: maxCursorBatch, spawn: rt.workers.Go, linger: cursorLinger, panicked: rt.panicked("cursors"),
		run: saveCursors(cfg.Store), fail: func(err error) error { return err }}
	rt.leases = &batcher[leaseCall, persistence.LeaseResult]{max: maxActivationBatch, spawn: rt.workers.Go, panicked: rt.panicked("leases"),
		run: acquireLeases(cfg.Store), fail: func(err error) persistence.LeaseResult { return persistence.LeaseResult{Err: err} }}
	rt.states = &batcher[string, persistence.ActivationStateResult]{max: maxActivationBatch, spawn: rt.workers.Go, panicked: rt.panicked("states"),
		run: readStates(cfg.Store), fail: func(err error) persistence.ActivationStateResult {
			return persistence.ActivationStateResult{Err: err}
		}}
	rt.contacts = &batcher[persistence.ContactPublished, error]{max: maxActivationBatch, spawn: rt.workers.Go, panicked: rt.panicked("contacts"),
		run: recordContacts(cfg.Store), fail: func(err error) error { return err }}
	rt.events = newEvents(rt)
	var err error
	gauges := runtimeGauges{
		backlog:            rt.backlog,
		oldestFailingReply: rt.oldestFailingReply,
		connected: func() float64 {
			if rt.Connected() {
				return 1
			}
			return 0
		},
		catchUpFailing: func() float64 { return rt.CatchUpFailingFor().Seconds() },
		proofs:         rt.proofCounts,
	}
	if rt.metrics, err = newMetrics(cfg.Registerer, gauges); err != nil {
		return nil, err
	}
	if rt.breaker, err = newBreaker(cfg.Breaker, cfg.Store, cfg.Registerer); err != nil {
		return nil, err
	}
	if rt.supervision, err = supervision.NewMetrics(cfg.Registerer); err != nil {
		return nil, err
	}
	if rt.cluster, err = cluster.New(cfg.clusterConfig(), host{rt}); err != nil {
		return nil, err
	}
	return rt, nil
}

// proofCounts returns the set proof counts of the node subscription, 0
// before it starts.
func (rt *Runtime) proofCounts() api.ProofCounts {
	if rt.ingress == nil {
		return api.ProofCounts{}
	}
	if p, ok := rt.ingress.sub.(interface{ ProofCounts() api.ProofCounts }); ok {
		return p.ProofCounts()
	}
	return api.ProofCounts{}
}

func (rt *Runtime) backlog() float64 {
	if rt.ingress == nil {
		return 0
	}
	return rt.ingress.backlog()
}

// Start opens the node subscription, joins the cluster as a member with the
// kind "bridge" through the configured provider, and starts the placement
// reconciler, which activates every bridge this member owns.
func (rt *Runtime) Start(ctx context.Context) error {
	cfg := rt.cfg
	// No meter provider: protoactor's own metrics stay off. Enabled, they
	// register a mailbox-length callback for every actor ever spawned and
	// never remove it, so memory and the cost of a scrape grow with every
	// identity ever activated, and they time every message. The node's own
	// counters (metrics.go) say what operators need: actors spawned and
	// stopped, by kind, and undelivered messages.
	rt.system = actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger {
		return cfg.ProtoactorLogger
	}))
	rt.root = rt.system.Root
	rt.deadLetterSub = rt.system.EventStream.Subscribe(func(evt any) {
		if _, ok := evt.(*actor.DeadLetterEvent); ok {
			rt.metrics.undelivered.Inc()
		}
	})
	rt.ingress = newIngress(cfg.XMTP.Subscribe(context.Background()), rt.root, rt.log, rt.metrics)
	if store, ok := cfg.Store.(TombstoneStore); ok && cfg.TombstoneMessage != "" {
		props := actor.PropsFromProducer(func() actor.Actor { return &tombstones{rt: rt, store: store} })
		if _, err := rt.root.SpawnNamed(props, TombstoneActorName); err != nil {
			return fmt.Errorf("start tombstone responder: %w", err)
		}
	}
	rt.events.start()
	rt.due.start()
	// The lock-free mailbox: a few dozen bytes for an idle identity where
	// the default ring buffer takes a few hundred, at the price of a small
	// allocation per message.
	kind := protocluster.NewKind(Kind, actor.PropsFromProducer(func() actor.Actor { return &identity{rt: rt} },
		actor.WithMailbox(actor.UnboundedLockfree()), actor.WithDispatcher(rt.workers.dispatcher()),
		actor.WithSpawnFunc(countSpawns(rt.metrics.spawnsIdentity))))
	return rt.cluster.Start(ctx, rt.system, kind)
}

// Activate makes sure the bridge's identity is active in the cluster, on
// whichever member owns it, and returns the activation's error, if it
// failed. While the identity moves between members (its lease still held
// by the previous activation) it tries again until ctx's deadline.
func (rt *Runtime) Activate(ctx context.Context, bridgeID string) error {
	return rt.activate(ctx, bridgeID, true)
}

func (rt *Runtime) activate(ctx context.Context, bridgeID string, wait bool) error {
	deadline := rt.deadline(ctx)
	for {
		res, err := rt.call(ctx, deadline, bridgeID, &actorpb.ActivateRequest{}, true)
		if err != nil {
			return fmt.Errorf("activate %s: %w", bridgeID, err)
		}
		r, ok := res.(*actorpb.ActivateResponse)
		if !ok {
			return fmt.Errorf("activate %s: unexpected answer %T", bridgeID, res)
		}
		err = errorFromWire(r.Error)
		if err == nil || !wait || !retryable(err) || !rt.pause(ctx, deadline) {
			if err != nil {
				return fmt.Errorf("activate %s: %w", bridgeID, err)
			}
			return nil
		}
	}
}

// deadline is ctx's deadline, or ActivationTimeout from now.
func (rt *Runtime) deadline(ctx context.Context) time.Time {
	if dl, ok := ctx.Deadline(); ok {
		return dl
	}
	return time.Now().Add(rt.cfg.ActivationTimeout)
}

// pause waits a moment before a request is tried again and reports whether
// there is time left for it.
func (rt *Runtime) pause(ctx context.Context, deadline time.Time) bool {
	wait := min(retryPause, time.Until(deadline))
	if wait <= 0 {
		return false
	}
	select {
	case <-ctx.Done():
		return false
	case <-time.After(wait):
		return time.Until(deadline) > 0
	}
}

// retryPause is the wait between two tries of a request to a grain.
const retryPause = 200 * time.Millisecond

// call sends msg to the grain of bridgeID on the member that owns it and
// waits for the answer, until deadline. It is the application's own retry
// loop: protoactor's spends its whole budget on one timeout and resends
// anything that timed out. Here a try that provably did not reach a live
// grain (no owner yet, a dead letter, the member gone) is sent again after
// a pause; a try that timed out is sent again only when the request is
// idempotent, and otherwise ends the call, since it may have run.
func (rt *Runtime) call(ctx context.Context, deadline time.Time, bridgeID string, msg any, idempotent bool) (any, error) {
	var last error
	for {
		if rt.isStopping() {
			return nil, ErrStopped
		}
		remaining := time.Until(deadline)
		if remaining <= 0 || ctx.Err() != nil {
			if last == nil {
				last = context.DeadlineExceeded
			}
			return nil, fmt.Errorf("%w (last try: %w)", context.DeadlineExceeded, last)
		}
		pid := rt.grainPID(bridgeID)
		if pid == nil {
			last = errNoOwner
			rt.pause(ctx, deadline)
			continue
		}
		try := remaining
		if idempotent {
			try = min(remaining, activationTry)
		}
		res, err := rt.root.RequestFuture(pid, msg, try).Result()
		if err == nil && res != nil {
			return res, nil
		}
		rt.cluster.Forget(bridgeID)
		if err == nil {
			err = errors.New("empty answer")
		}
		last = err
		timedOut := errors.Is(err, actor.ErrTimeout) || errors.Is(err, remote.ErrTimeout)
		if timedOut && !idempotent {
			return nil, fmt.Errorf("no answer within %s: %w: %w", try.Round(time.Millisecond), ErrOutcomeUnknown, err)
		}
		rt.pause(ctx, deadline)
	}
}

// grainPID returns the identity's grain, activating it on its owner;
// nil when no member can take it now.
func (rt *Runtime) grainPID(bridgeID string) *actor.PID {
	return rt.cluster.Grain(bridgeID)
}

// errNoOwner means the cluster has no member for the identity yet.
var errNoOwner = errors.New("no cluster member can host the identity yet")

// activationTry bounds one try of an idempotent request.
const activationTry = 5 * time.Second

// Deactivate stops the bridge's identity, on this node when it is active
// here and otherwise through the cluster on whichever member hosts it, and
// waits until it released its lease. Call it for a bridge that was
// disabled or deleted: otherwise its owner's reconciler starts it again.
func (rt *Runtime) Deactivate(ctx context.Context, bridgeID string) error {
	if a := rt.activation(bridgeID); a != nil {
		return rt.stopGrain(ctx, a)
	}
	if rt.isStopping() {
		return nil
	}
	// A grain that is not active answers the request too: its activation
	// fails for a disabled or deleted bridge, and it stops.
	if _, err := rt.call(ctx, rt.deadline(ctx), bridgeID, &actorpb.StopRequest{}, true); err != nil {
		return fmt.Errorf("deactivate %s: %w", bridgeID, err)
	}
	return nil
}

// deactivateLocal stops the bridge's identity if this node hosts it.
func (rt *Runtime) deactivateLocal(ctx context.Context, bridgeID string) error {
	a := rt.activation(bridgeID)
	if a == nil {
		return nil
	}
	return rt.stopGrain(ctx, a)
}

func (rt *Runtime) stopGrain(ctx context.Context, a *activation) error {
	timeout := rt.cfg.DrainTimeout + 10*time.Second
	if dl, ok := ctx.Deadline(); ok {
		timeout = time.Until(dl)
	}
	if _, err := rt.root.PoisonFuture(a.self).Result(); err != nil && !errors.Is(err, actor.ErrDeadLetter) && !errors.Is(err, actor.ErrTimeout) {
		return fmt.Errorf("deactivate %s: %w", a.bridgeID, err)
	}
	// The future ends when the identity terminated; its cleanup ran in
	// Stopping, before that.
	deadline := time.Now().Add(timeout)
	for rt.hosts(a) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	return nil
}

// Send sends content to an address as the bridge identity, through its
// grain on whichever member hosts it (activating it if needed), and
// returns the message id. A send that reached an activation on its way out
// (stale, stopping, or not yet free to take the lease) did not run and is
// sent again to the next one, until ctx's deadline.
func (rt *Runtime) Send(ctx context.Context, bridgeID, to string, body *content.Content) (string, error) {
	raw, err := content.Encode(body)
	if err != nil {
		return "", fmt.Errorf("send as %s: %w", bridgeID, err)
	}
	deadline := rt.deadline(ctx)
	for {
		// A grain that is not active yet activates before it reads the
		// request; one that cannot answers with the reason, which is
		// retryable while the identity moves.
		res, err := rt.call(ctx, deadline, bridgeID, &actorpb.SendRequest{To: to, Content: raw}, false)
		if err != nil {
			return "", fmt.Errorf("send as %s: %w", bridgeID, err)
		}
		r, ok := res.(*actorpb.SendResponse)
		if !ok {
			return "", fmt.Errorf("send as %s: unexpected answer %T", bridgeID, res)
		}
		err = errorFromWire(r.Error)
		if err == nil {
			return r.MessageId, nil
		}
		if !retryable(err) || !rt.pause(ctx, deadline) {
			return "", fmt.Errorf("send as %s: %w", bridgeID, err)
		}
	}
}

// Status returns the status of a bridge identity this node hosts, and
// false when it does not host it.
func (rt *Runtime) Status(bridgeID string) (Status, bool) {
	a := rt.activation(bridgeID)
	if a == nil {
		return Status{}, false
	}
	return a.status(), true
}

// Nudge makes the forward handler of a bridge look for due deliveries and
// replies now rather than at the scheduler's next pass, for example after a dead
// letter was replayed, on whichever member hosts it. It does not wait.
func (rt *Runtime) Nudge(bridgeID string) {
	if rt.isStopping() {
		return
	}
	if rt.sweepBridge(bridgeID) {
		return
	}
	go func() {
		if pid := rt.grainPID(bridgeID); pid != nil {
			rt.root.Send(pid, &actorpb.NudgeRequest{})
		}
	}()
}

// Hosted returns the ids of the bridges this node hosts.
func (rt *Runtime) Hosted() []string {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	out := make([]string, 0, len(rt.active))
	for id := range rt.active {
		out = append(out, id)
	}
	return out
}

// Connected reports whether the node subscription is established, for
// readiness.
func (rt *Runtime) Connected() bool {
	return rt.ingress != nil && rt.ingress.sub.Connected()
}

// CatchUpFailingFor returns how long the node subscription's catch-up
// queries have failed, or 0 while they work (api.Subscription).
func (rt *Runtime) CatchUpFailingFor() time.Duration {
	if rt.ingress == nil {
		return 0
	}
	return rt.ingress.sub.CatchUpFailingFor()
}

// Stop stops intake (the node subscription), stops every identity (each
// waits for its running webhook attempts, bounded by DrainTimeout, and
// releases its lease; pending deliveries and replies stay in the store for
// the next activation) and leaves the cluster, so the other members take
// the identities over.
func (rt *Runtime) Stop(ctx context.Context) error {
	if !rt.cluster.BeginStop() {
		return nil
	}
	if rt.ingress != nil {
		rt.ingress.close(ctx)
	}
	rt.stopAll(ctx)
	rt.due.close()
	rt.events.close()
	rt.workers.stop()
	if rt.deadLetterSub != nil {
		rt.system.EventStream.Unsubscribe(rt.deadLetterSub)
	}
	// Leases are renewed until every identity has stopped and released
	// its own, however long their drain takes.
	return rt.cluster.Stop()
}

// sweepBridge wakes the forward child of a bridge this node hosts, through
// its identity actor (which spawns the child on first use), and reports
// whether the node hosts it.
func (rt *Runtime) sweepBridge(bridgeID string) bool {
	a := rt.activation(bridgeID)
	if a == nil {
		return false
	}
	rt.root.Send(a.self, &sweepTick{})
	return true
}

// hostedCount is how many identities this node hosts.
func (rt *Runtime) hostedCount() int {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	return len(rt.active)
}

// activation returns the bridge's activation on this node, or nil.
func (rt *Runtime) activation(bridgeID string) *activation {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	return rt.active[bridgeID]
}

// isStopping reports whether the node takes no requests for grains: not
// started yet, draining or stopping.
func (rt *Runtime) isStopping() bool {
	return rt.cluster.Leaving()
}

func (rt *Runtime) hosts(a *activation) bool {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	return rt.active[a.bridgeID] == a
}

func (rt *Runtime) register(a *activation) {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	if _, ok := rt.active[a.bridgeID]; !ok {
		rt.metrics.hosted.Inc()
	}
	rt.active[a.bridgeID] = a
}

// unregister forgets a, unless a newer activation replaced it. The hosted
// gauge moves under the same lock, so it agrees with Status and Hosted.
func (rt *Runtime) unregister(a *activation) {
	rt.failing.forget(a)
	rt.mu.Lock()
	defer rt.mu.Unlock()
	if rt.active[a.bridgeID] != a {
		return
	}
	delete(rt.active, a.bridgeID)
	delete(rt.bridges, a.bridgeID)
	rt.metrics.hosted.Dec()
	// Placement looks at it again: a stale or failed identity the node
	// still owns is activated again.
	rt.cluster.IdentityStopped(a.bridgeID)
}

// bridgeConfig returns the bridge's configuration. The copy read from the
// store is kept until a bridge_changed notification names the bridge
// (events.go), or the node's listener reconnects; while it is not
// listening nothing is kept. A change over REST also reaches the owner as
// an ActivateRequest, which drops the copy (forgetBridge) before the API
// answers.
func (rt *Runtime) bridgeConfig(ctx context.Context, bridgeID string) (persistence.Bridge, bool) {
	rt.mu.Lock()
	c, ok := rt.bridges[bridgeID]
	bucket := genBucket(bridgeID)
	gen := rt.bridgesGen[bucket]
	rt.mu.Unlock()
	if ok {
		return c, true
	}
	b, err := rt.cfg.Store.BridgeByID(ctx, bridgeID)
	if err != nil {
		rt.log.Warn("load bridge", "bridge", bridgeID, "error", err)
		return persistence.Bridge{}, false
	}
	rt.mu.Lock()
	// A copy read while a bridge was forgotten may predate the change
	// that made it forget: it is used once but not kept.
	if rt.bridgesGen[bucket] == gen && rt.events.listening() {
		rt.bridges[bridgeID] = b
	}
	rt.mu.Unlock()
	return b, true
}

// forgetBridge drops the cached configuration of a bridge, so the next
// use reads it from the store.
func (rt *Runtime) forgetBridge(bridgeID string) {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	delete(rt.bridges, bridgeID)
	rt.bridgesGen[genBucket(bridgeID)]++
	rt.earlySecrets.forget(bridgeID)
}

// forgetBridges drops every cached configuration.
func (rt *Runtime) forgetBridges() {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	clear(rt.bridges)
	for i := range rt.bridgesGen {
		rt.bridgesGen[i]++
	}
}

// cachedBridge returns the configuration the runtime keeps for a bridge,
// if any, without reading the store.
func (rt *Runtime) cachedBridge(bridgeID string) (persistence.Bridge, bool) {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	b, ok := rt.bridges[bridgeID]
	return b, ok
}

// oldestFailingReply is the age in seconds of the oldest reply of the
// node's activations whose publish failed and that is not out yet; 0 when
// none fails.
func (rt *Runtime) oldestFailingReply() float64 {
	oldest := rt.failing.oldest()
	if oldest.IsZero() {
		return 0
	}
	return max(0, time.Since(oldest).Seconds())
}

// panicked returns the hook by which the node's batcher name reports a
// panic it recovered from (batcher.panicked): an error in the log and
// bridge_internal_panics_total{where="name_hook"}.
func (rt *Runtime) panicked(name string) func(string, any) {
	return func(hook string, p any) { rt.recoverPanic(name+"_"+hook, p) }
}

// recoverPanic reports a panic the node recovered from at where. The work
// it interrupted is failed or left for a sweep, so nothing is lost, but it
// is a defect, and never a quiet one.
func (rt *Runtime) recoverPanic(where string, p any) {
	rt.log.Error("recovered from a panic", "where", where, "panic", fmt.Sprint(p))
	if rt.metrics != nil {
		rt.metrics.panics.WithLabelValues(where).Inc()
	}
}
