package actors

// The endpoint breaker.
//
// Not an actor: a state machine the forward pipeline consults around each
// webhook attempt, whose state is the bridge's endpoint_health row in
// Postgres, so that every node, and a newly rehomed owner, agree on it.
//
//   - admit, before an attempt: healthy and failing endpoints get every
//     attempt; an open one only the probe, claimed in the row (at most one
//     per probe interval across the cluster); a disabled one none.
//   - report, after an outcome: a 2xx closes the breaker (healthy); while
//     it was open, the store makes every waiting delivery due in the same
//     transaction and the forward child is nudged, which attempts them
//     oldest first within the bridge's concurrency: the recovery flush. A
//     failure lengthens the streak and opens the breaker at OpenAfter.
//   - An endpoint open for DisableAfter is disabled, as with a 410: the
//     bridge's status becomes endpoint_gone until the owner sets it
//     active again, which resets the health.
//
// The probe schedule needs no timer per identity: the row's next_probe_at
// makes the oldest due delivery due again for whatever finds due work (the
// node's scheduler and the forward child's sweep, persistence.DueWork and
// DueDeliveries), which then asks admit. To probe on time rather than at
// the scheduler's next pass, a node that opened an endpoint, refused an
// attempt of an open one, or claimed its probe, arms one timer for that
// endpoint at its next probe, which nudges the bridge: at
// most one timer per open endpoint the node hosts, none for a healthy
// one, stopped when the endpoint closes. An
// attempt admit refuses records nothing, so it uses none of the delivery's
// MaxAttempts; MaxAge still holds: each probe claim makes dead letters of
// the deliveries older than it.

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/xmtpbridge/bridge/actors/webhook"
	"github.com/xmtpbridge/bridge/persistence"
)

// BreakerConfig configures the endpoint breaker; zero values take the
// defaults.
type BreakerConfig struct {
	// OpenAfter is the failure streak that opens an endpoint's breaker;
	// default 5.
	OpenAfter int
	// ProbeMin is the wait before the first probe of an open endpoint,
	// doubling after each failed probe; default 5s.
	ProbeMin time.Duration
	// ProbeMax caps the wait between probes; default 5m.
	ProbeMax time.Duration
	// DisableAfter is how long an endpoint stays open before it is
	// disabled; default 120h.
	DisableAfter time.Duration
}

func (c BreakerConfig) withDefaults() BreakerConfig {
	if c.OpenAfter <= 0 {
		c.OpenAfter = 5
	}
	if c.ProbeMin <= 0 {
		c.ProbeMin = 5 * time.Second
	}
	if c.ProbeMax <= 0 {
		c.ProbeMax = 5 * time.Minute
	}
	if c.ProbeMax < c.ProbeMin {
		c.ProbeMax = c.ProbeMin
	}
	if c.DisableAfter <= 0 {
		c.DisableAfter = 120 * time.Hour
	}
	return c
}

// healthStore is what the breaker needs of the store; a Store without it
// (a test double) runs with no breaker.
type healthStore interface {
	EndpointHealthOf(ctx context.Context, bridgeID string) (persistence.EndpointHealth, error)
	RecordEndpointOutcome(ctx context.Context, bridgeID string, success bool, rules persistence.BreakerRules) (persistence.EndpointState, persistence.EndpointState, error)
	ClaimProbe(ctx context.Context, bridgeID string, probeMin, probeMax time.Duration) (bool, time.Time, error)
	DisableEndpoint(ctx context.Context, bridgeID string, openedBefore time.Time) (bool, error)
	ResetEndpointHealth(ctx context.Context, bridgeID string) error
	ExpireWaitingDeliveries(ctx context.Context, l persistence.Lease, bridgeID string, except int64, createdBefore time.Time) (int64, error)
	EndpointCounts(ctx context.Context) (map[persistence.EndpointState]int64, int64, error)
}

// healthCacheTTL bounds how long the owner trusts its copy of a healthy
// endpoint's state before it reads the row again; a copy of an open or
// disabled one is never trusted.
const healthCacheTTL = 2 * time.Second

type breaker struct {
	cfg         BreakerConfig
	store       healthStore
	transitions *prometheus.CounterVec

	mu sync.Mutex
	// seen holds, for the bridges this node attempted in the last
	// healthCacheTTL, the state it last read or wrote; it is pruned as it
	// grows, so it stays bounded by the bridges attempting at once.
	seen map[string]seenHealth
	// wakes holds the one timer of each open endpoint that nudges its
	// bridge at the next probe.
	wakes map[string]wakeTimer
}

type wakeTimer struct {
	t  *time.Timer
	at time.Time
}

type seenHealth struct {
	state persistence.EndpointState
	at    time.Time
	// success is when this node last wrote a success to the row.
	success time.Time
}

func newBreaker(cfg BreakerConfig, store Store, reg prometheus.Registerer) (*breaker, error) {
	br := &breaker{cfg: cfg.withDefaults(), seen: map[string]seenHealth{}, wakes: map[string]wakeTimer{}}
	br.store, _ = store.(healthStore)
	br.transitions = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "bridge_endpoint_transitions_total",
		Help: "Endpoint breaker transitions, by the state entered (healthy, failing, open, disabled).",
	}, []string{"to"})
	for _, s := range persistence.EndpointStates {
		br.transitions.WithLabelValues(string(s))
	}
	for _, c := range []prometheus.Collector{br.transitions, &endpointCollector{br: br}} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register breaker metrics: %w", err)
		}
	}
	return br, nil
}

func (br *breaker) cached(bridgeID string) (persistence.EndpointState, bool) {
	br.mu.Lock()
	defer br.mu.Unlock()
	s, ok := br.seen[bridgeID]
	if !ok || time.Since(s.at) > healthCacheTTL {
		return "", false
	}
	return s.state, true
}

// successFresh reports whether the endpoint is healthy and this node wrote
// its last success less than healthCacheTTL ago.
func (br *breaker) successFresh(bridgeID string) bool {
	br.mu.Lock()
	defer br.mu.Unlock()
	s, ok := br.seen[bridgeID]
	return ok && s.state == persistence.EndpointHealthy && time.Since(s.at) <= healthCacheTTL &&
		time.Since(s.success) <= healthCacheTTL
}

func (br *breaker) remember(bridgeID string, state persistence.EndpointState) {
	br.note(bridgeID, state, false)
}

// note records the state this node read or wrote; wroteSuccess when it
// wrote a success.
func (br *breaker) note(bridgeID string, state persistence.EndpointState, wroteSuccess bool) {
	br.mu.Lock()
	defer br.mu.Unlock()
	if len(br.seen) >= 1024 {
		for id, s := range br.seen {
			if time.Since(s.at) > healthCacheTTL {
				delete(br.seen, id)
			}
		}
	}
	now := time.Now()
	s := seenHealth{state: state, at: now, success: br.seen[bridgeID].success}
	if wroteSuccess {
		s.success = now
	}
	br.seen[bridgeID] = s
}

// wake nudges the bridge at the next probe of its open endpoint. The
// bridge keeps one wake, at the latest probe time it was told: a probe
// claimed since an earlier one moved the schedule on.
func (br *breaker) wake(rt *Runtime, bridgeID string, at time.Time) {
	br.mu.Lock()
	defer br.mu.Unlock()
	if w, armed := br.wakes[bridgeID]; armed {
		if !at.After(w.at) {
			return
		}
		w.t.Stop()
	}
	var w wakeTimer
	w.at = at
	w.t = time.AfterFunc(max(time.Until(at), 0)+10*time.Millisecond, func() {
		br.mu.Lock()
		if cur, ok := br.wakes[bridgeID]; ok && cur.at.Equal(at) {
			delete(br.wakes, bridgeID)
		}
		br.mu.Unlock()
		rt.Nudge(bridgeID)
	})
	br.wakes[bridgeID] = w
}

// disarm stops the wake of a bridge whose endpoint closed.
func (br *breaker) disarm(bridgeID string) {
	br.mu.Lock()
	defer br.mu.Unlock()
	if w, ok := br.wakes[bridgeID]; ok {
		w.t.Stop()
		delete(br.wakes, bridgeID)
	}
}

func (br *breaker) forget(bridgeID string) {
	br.mu.Lock()
	defer br.mu.Unlock()
	delete(br.seen, bridgeID)
}

// admit reports whether the activation may attempt the delivery probe of
// bridge b now: always while the endpoint is healthy or failing; while it
// is open, only when this call claims the probe. A store error admits: the
// breaker never holds back more than the retry schedule would.
func (a *activation) admit(b persistence.Bridge, probe int64) bool {
	br := a.rt.breaker
	if br.store == nil {
		return true
	}
	if s, ok := br.cached(a.bridgeID); ok && (s == persistence.EndpointHealthy || s == persistence.EndpointFailing) {
		return true
	}
	ctx, cancel := context.WithTimeout(a.ctx, 5*time.Second)
	defer cancel()
	h, err := br.store.EndpointHealthOf(ctx, a.bridgeID)
	if err != nil {
		a.log.Warn("load endpoint health", "error", err)
		return true
	}
	switch h.State {
	case persistence.EndpointOpen:
	case persistence.EndpointDisabled:
		if b.Status != persistence.StatusActive {
			return false
		}
		// The owner set the bridge active again: a fresh start.
		if err := br.store.ResetEndpointHealth(ctx, a.bridgeID); err != nil {
			a.log.Warn("reset endpoint health", "error", err)
			return false
		}
		br.transitions.WithLabelValues(string(persistence.EndpointHealthy)).Inc()
		a.log.Info("endpoint breaker", "from", string(h.State), "to", string(persistence.EndpointHealthy))
		br.remember(a.bridgeID, persistence.EndpointHealthy)
		a.rt.Nudge(a.bridgeID)
		return true
	default:
		br.remember(a.bridgeID, h.State)
		return true
	}
	now := time.Now()
	if h.OpenedAt != nil && now.Sub(*h.OpenedAt) >= br.cfg.DisableAfter {
		a.disableEndpoint(ctx, now)
		return false
	}
	claimed, next, err := br.store.ClaimProbe(ctx, a.bridgeID, br.cfg.ProbeMin, br.cfg.ProbeMax)
	if err != nil {
		a.log.Warn("claim probe", "error", err)
		return false
	}
	if !claimed {
		if h.NextProbeAt != nil {
			br.wake(a.rt, a.bridgeID, *h.NextProbeAt)
		}
		return false
	}
	// Should the probe fail, the next one is due then, whether or not a
	// delivery is refused in between.
	br.wake(a.rt, a.bridgeID, next)
	// The age bound holds while attempts wait: once per probe, the
	// deliveries past MaxAge become dead letters (the probe's own
	// outcome decides its fate, and counts it).
	maxAge := a.rt.cfg.Retry.MaxAge
	if maxAge <= 0 {
		maxAge = 24 * time.Hour
	}
	if n, err := br.store.ExpireWaitingDeliveries(ctx, a.currentLease(), a.bridgeID, probe, now.Add(-maxAge)); err != nil {
		a.noteFenced(err)
		a.log.Warn("expire waiting deliveries", "error", err)
	} else if n > 0 {
		a.rt.metrics.deadLetters.Add(float64(n))
		a.log.Warn("deliveries dead while the endpoint is down", "count", n)
	}
	a.log.Info("endpoint probe", "opened_at", h.OpenedAt)
	return true
}

// disableEndpoint stops forwarding to an endpoint that has been open for
// DisableAfter, as a 410 does: the bridge's status becomes endpoint_gone,
// first, so that nothing is attempted in between.
func (a *activation) disableEndpoint(ctx context.Context, now time.Time) {
	br := a.rt.breaker
	if err := a.rt.cfg.Store.SetLeasedBridgeStatus(ctx, a.currentLease(), a.bridgeID, persistence.StatusEndpointGone); err != nil {
		a.noteFenced(err)
		a.log.Error("set bridge status", "status", persistence.StatusEndpointGone, "error", err)
		return
	}
	a.rt.forgetBridge(a.bridgeID)
	done, err := br.store.DisableEndpoint(ctx, a.bridgeID, now.Add(-br.cfg.DisableAfter))
	if err != nil {
		a.log.Error("disable endpoint", "error", err)
		return
	}
	if done {
		br.transitions.WithLabelValues(string(persistence.EndpointDisabled)).Inc()
		br.forget(a.bridgeID)
		a.log.Warn("endpoint breaker", "from", string(persistence.EndpointOpen), "to", string(persistence.EndpointDisabled))
	}
}

// reportOutcome moves the endpoint's health on the result of a real
// attempt. Only answers and failures of the endpoint count: a payload the
// bridge could not decode, a target the SSRF guard refused, a final 4xx or
// a 410 (which disables the bridge on its own) do not.
func (a *activation) reportOutcome(res webhook.Result) {
	br := a.rt.breaker
	if br.store == nil {
		return
	}
	var success bool
	switch res.Outcome {
	case webhook.OutcomeDelivered, webhook.OutcomeBadReply:
		success = true
		// A healthy endpoint's row is written at most once per
		// healthCacheTTL: its last success is that fresh.
		if br.successFresh(a.bridgeID) {
			return
		}
	case webhook.OutcomeThrottled, webhook.OutcomeRetry:
	default:
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	from, to, err := br.store.RecordEndpointOutcome(ctx, a.bridgeID, success,
		persistence.BreakerRules{OpenAfter: br.cfg.OpenAfter, ProbeMin: br.cfg.ProbeMin})
	if err != nil {
		a.log.Warn("record endpoint outcome", "error", err)
		br.forget(a.bridgeID)
		return
	}
	br.note(a.bridgeID, to, success)
	if from == to {
		return
	}
	br.transitions.WithLabelValues(string(to)).Inc()
	a.log.Info("endpoint breaker", "from", string(from), "to", string(to))
	if to == persistence.EndpointOpen {
		// The due deliveries of an open endpoint are not handed out
		// until its probe is due (persistence.DueDeliveries): the wake
		// at the first probe starts the probes.
		if h, err := br.store.EndpointHealthOf(ctx, a.bridgeID); err == nil && h.NextProbeAt != nil {
			br.wake(a.rt, a.bridgeID, *h.NextProbeAt)
		}
	}
	if from == persistence.EndpointOpen && to == persistence.EndpointHealthy {
		br.disarm(a.bridgeID)
		// The store made the backlog due: attempt it now.
		a.rt.Nudge(a.bridgeID)
	}
}

// endpointCollector exports, at scrape time, how many endpoints are in
// each state and how many deliveries wait on open or disabled ones. The
// numbers are the cluster's (every node reads the same rows): alert on
// their max.
type endpointCollector struct{ br *breaker }

var (
	endpointStateDesc = prometheus.NewDesc("bridge_endpoint_state",
		"Bridge endpoints in each breaker state (healthy, failing, open, disabled), across the cluster.", []string{"state"}, nil)
	endpointBacklogDesc = prometheus.NewDesc("bridge_endpoint_backlog_deliveries",
		"Deliveries waiting on endpoints whose breaker is open or disabled, across the cluster.", nil, nil)
)

func (c *endpointCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- endpointStateDesc
	ch <- endpointBacklogDesc
}

func (c *endpointCollector) Collect(ch chan<- prometheus.Metric) {
	counts := map[persistence.EndpointState]int64{}
	var backlog int64
	if c.br.store != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		var err error
		if counts, backlog, err = c.br.store.EndpointCounts(ctx); err != nil {
			// An unknown value is no value: no sample rather than a 0.
			return
		}
	}
	for _, s := range persistence.EndpointStates {
		ch <- prometheus.MustNewConstMetric(endpointStateDesc, prometheus.GaugeValue, float64(counts[s]), string(s))
	}
	ch <- prometheus.MustNewConstMetric(endpointBacklogDesc, prometheus.GaugeValue, float64(backlog))
}
