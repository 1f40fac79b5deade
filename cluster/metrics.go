package cluster

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the cluster's instruments: membership, placement, fencing
// and drain. Identities are never labels: a node hosts too many of them.
type metrics struct {
	members           prometheus.GaugeFunc
	topologyChanges   prometheus.Counter
	placementLag      prometheus.GaugeFunc
	unplaced          prometheus.Gauge
	rehome            prometheus.Histogram
	takeovers         prometheus.Counter
	fencedWrites      prometheus.Counter
	renewErrors       prometheus.Counter
	draining          prometheus.Gauge
	membershipRepairs prometheus.Counter
	passes            *prometheus.CounterVec
}

// nodeGauges are the values the node's gauges read at scrape time.
type nodeGauges struct {
	members      func() float64
	placementLag func() float64
}

func newMetrics(reg prometheus.Registerer, g nodeGauges) (*metrics, error) {
	m := &metrics{}
	m.members = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "bridge_cluster_members",
		Help: "Members of the cluster in this node's view of the topology.",
	}, g.members)
	m.topologyChanges = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "bridge_cluster_topology_changes_total",
		Help: "Changes of the cluster's member set seen by this node.",
	})
	m.placementLag = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "bridge_cluster_placement_lag_seconds",
		Help: "Seconds since the last topology change while identities this node owns are not all active; 0 when placement is complete.",
	}, g.placementLag)
	m.unplaced = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "bridge_cluster_unplaced_identities",
		Help: "Identities this node owns that the last placement round could not activate.",
	})
	m.rehome = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "bridge_cluster_rehome_seconds",
		Help:    "Time from a topology change until every identity this node owns is active again.",
		Buckets: []float64{0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60, 120, 300},
	})
	m.takeovers = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "bridge_cluster_lease_takeovers_total",
		Help: "Leases this node took over after they expired unreleased: their holder crashed, hung or was cut off.",
	})
	m.fencedWrites = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "bridge_cluster_fenced_writes_total",
		Help: "Writes, sends and webhook attempts refused because the activation no longer held the current lease, and lease renewals refused: a lost node lease counts once, however many identities it stops (those count in bridge_actor_stale_activations_total).",
	})
	m.renewErrors = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "bridge_actor_lease_renewal_errors_total",
		Help: "Lease renewal rounds of this node that failed; the node's identities fence themselves once their leases run out.",
	})
	m.draining = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "bridge_cluster_draining",
		Help: "1 while this node drains (or has drained) its identities to the other members.",
	})
	m.membershipRepairs = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "bridge_cluster_membership_repairs_total",
		Help: "Members registered in etcd that this node's cluster view missed, announced again so its provider sees them.",
	})
	m.passes = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "bridge_cluster_placement_passes_total",
		Help: "Placement passes of this node, by kind: full (every bridge read and hashed) or changed (only the bridges named since the last pass).",
	}, []string{"kind"})
	for _, c := range []prometheus.Collector{m.members, m.topologyChanges, m.placementLag, m.unplaced, m.rehome,
		m.takeovers, m.fencedWrites, m.renewErrors, m.draining, m.membershipRepairs, m.passes} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register cluster metrics: %w", err)
		}
	}
	return m, nil
}
