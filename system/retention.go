package system

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/xmtpbridge/bridge/persistence"
)

// retentionTimeout bounds one retention sweep.
const retentionTimeout = 5 * time.Minute

// retention is the node's one retention sweep: on start and then every
// interval it seals content an older version left in clear, erases the
// content of final deliveries and sent replies past their retention and
// deletes old quarantined messages (persistence.Store.SweepRetention). It
// is one goroutine per node, whatever the number of identities; the nodes
// of a cluster sweep independently and skip the rows another holds.
type retention struct {
	store    *persistence.Store
	log      *slog.Logger
	policy   persistence.Retention
	interval time.Duration

	sealed     prometheus.Counter
	purged     *prometheus.CounterVec
	quarantine prometheus.Counter
	errors     prometheus.Counter
	// liveExpired counts live messages that became dead letters.
	liveExpired prometheus.Counter

	stop chan struct{}
	done chan struct{}
}

func newRetention(store *persistence.Store, log *slog.Logger, reg prometheus.Registerer, policy persistence.Retention,
	interval time.Duration) (*retention, error) {
	r := &retention{
		store: store, log: log, policy: policy, interval: interval,
		sealed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "bridge_retention_sealed_total",
			Help: "Delivery payloads and outbox replies written in clear by an earlier version that the retention sweep sealed.",
		}),
		purged: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bridge_retention_purged_total",
			Help: "Final deliveries, sent replies and done live messages whose content the retention sweep erased, by kind (delivery, reply, live).",
		}, []string{"kind"}),
		liveExpired: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "bridge_live_expired_total",
			Help: "Live messages no consumer acknowledged within BRIDGE_LIVE_RETENTION; each became a dead letter.",
		}),
		quarantine: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "bridge_retention_quarantine_deleted_total",
			Help: "Quarantined messages the retention sweep deleted because they were older than BRIDGE_QUARANTINE_RETENTION.",
		}),
		errors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "bridge_retention_errors_total",
			Help: "Retention sweeps that met an error; the next sweep tries again.",
		}),
	}
	for _, k := range []string{"delivery", "reply", "live"} {
		r.purged.WithLabelValues(k)
	}
	for _, c := range []prometheus.Collector{r.sealed, r.purged, r.quarantine, r.errors, r.liveExpired} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register retention metrics: %w", err)
		}
	}
	return r, nil
}

// start runs the sweep loop until shutdown.
func (r *retention) start() {
	r.stop, r.done = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(r.done)
		t := time.NewTicker(r.interval)
		defer t.Stop()
		for {
			r.sweep()
			select {
			case <-r.stop:
				return
			case <-t.C:
			}
		}
	}()
}

func (r *retention) sweep() {
	ctx, cancel := context.WithTimeout(context.Background(), retentionTimeout)
	defer cancel()
	go func() {
		select {
		case <-r.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	res, err := r.store.SweepRetention(ctx, r.policy)
	r.sealed.Add(float64(res.Sealed))
	r.purged.WithLabelValues("delivery").Add(float64(res.PurgedDeliveries))
	r.purged.WithLabelValues("reply").Add(float64(res.PurgedReplies))
	r.quarantine.Add(float64(res.QuarantineDeleted))
	r.purged.WithLabelValues("live").Add(float64(res.PurgedLive))
	r.liveExpired.Add(float64(res.LiveExpired))
	if err != nil && ctx.Err() == nil {
		r.errors.Inc()
		r.log.Warn("retention sweep", "error", err)
	}
	if res != (persistence.SweepResult{}) {
		r.log.Info("retention sweep done", "sealed", res.Sealed, "purged_deliveries", res.PurgedDeliveries,
			"purged_replies", res.PurgedReplies, "quarantine_deleted", res.QuarantineDeleted,
			"live_expired", res.LiveExpired, "purged_live", res.PurgedLive)
	}
}

// shutdown stops the loop, ending a sweep in progress, and waits for it.
func (r *retention) shutdown(ctx context.Context) {
	if r.stop == nil {
		return
	}
	close(r.stop)
	select {
	case <-r.done:
	case <-ctx.Done():
	}
}
