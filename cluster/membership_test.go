package cluster

import (
	"context"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/cluster"
	"github.com/asynkron/protoactor-go/cluster/clusterproviders/etcd"
	"github.com/prometheus/client_golang/prometheus/testutil"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/xmtpbridge/bridge/internal/testkit"
)

// TestEtcdRepairAnnouncesAMissedMemberAgain gives one member of a
// two-member etcd cluster the view a missed watch event leaves (the other
// member absent) and checks the repair: the first round only notes the
// gap, the second writes the missing member's key back unchanged, under
// its own lease, and counts it.
func TestEtcdRepairAnnouncesAMissedMemberAgain(t *testing.T) {
	e := newEnv(t)
	endpoint := testkit.StartEtcd(t, "actors").Endpoint
	etcdCluster := func(c *Config) {
		c.Provider, c.EtcdEndpoints, c.EtcdPrefix, c.ClusterName = ProviderEtcd, []string{endpoint}, "/repair-test", "repair"
	}
	a, _ := e.runtime("a", etcdCluster)
	b, _ := e.runtime("b", etcdCluster)
	testkit.WaitFor(t, 30*time.Second, func() bool { return a.topo.size() == 2 && b.topo.size() == 2 }, "both members to see each other")

	var self, missed *cluster.Member
	for _, m := range a.topo.snapshot() {
		switch m.Address() {
		case a.system.Address():
			self = m
		case b.system.Address():
			missed = m
		}
	}
	if self == nil || missed == nil {
		t.Fatalf("a's view %v lacks a or b", a.topo.snapshot())
	}
	a.topo.update([]*cluster.Member{self}, time.Now()) // b's registration "missed"

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	prefix := "/repair-test/repair/"
	before, err := a.etcd.Get(ctx, prefix, clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	revs, leases, values := map[string]int64{}, map[string]int64{}, map[string]string{}
	missedKey := ""
	for _, kv := range before.Kvs {
		k := string(kv.Key)
		revs[k], leases[k], values[k] = kv.ModRevision, kv.Lease, string(kv.Value)
		if n, err := etcd.NewNodeFromBytes(kv.Value); err == nil && n.ID == missed.Id {
			missedKey = k
		}
	}
	if missedKey == "" {
		t.Fatalf("etcd holds no key for b's member %s", missed.Id)
	}
	gaps := a.etcdRepairRound(ctx, prefix, etcdGaps{})
	if !gaps.missing[missed.Id] || len(gaps.missing) != 1 || len(gaps.stale) != 0 {
		t.Fatalf("first round found %+v, want only b's member %s missing", gaps, missed.Id)
	}
	a.etcdRepairRound(ctx, prefix, gaps)
	after, err := a.etcd.Get(ctx, prefix, clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	// The missed member's key, and only that one, is written back, with
	// its value and lease unchanged.
	var rewritten []string
	for _, kv := range after.Kvs {
		k := string(kv.Key)
		if kv.Lease != leases[k] {
			t.Errorf("%s: lease %d after the repair, want its own %d", k, kv.Lease, leases[k])
		}
		if string(kv.Value) != values[k] {
			t.Errorf("%s: the repair changed the value", k)
		}
		if kv.ModRevision > revs[k] {
			rewritten = append(rewritten, k)
		}
	}
	if len(rewritten) != 1 || rewritten[0] != missedKey {
		t.Fatalf("keys written back: %v, want only the missed member's %s", rewritten, missedKey)
	}
	if got := testutil.ToFloat64(a.metrics.membershipRepairs); got < 1 {
		t.Fatalf("bridge_cluster_membership_repairs_total = %v, want at least 1", got)
	}
}

// TestEtcdRepairAnnouncesAMissedDeparture gives a member a view that still
// holds a member etcd no longer has (the departure a broken watch misses)
// and checks that the second round writes and deletes that member's key,
// the events every watcher needs to drop it, and leaves the live members'
// keys alone.
func TestEtcdRepairAnnouncesAMissedDeparture(t *testing.T) {
	e := newEnv(t)
	endpoint := testkit.StartEtcd(t, "actors").Endpoint
	a, _ := e.runtime("a", func(c *Config) {
		c.Provider, c.EtcdEndpoints, c.EtcdPrefix, c.ClusterName = ProviderEtcd, []string{endpoint}, "/repair-test", "gone"
	})
	testkit.WaitFor(t, 30*time.Second, func() bool { return a.topo.size() == 1 }, "the member to see itself")
	ghost := &cluster.Member{Id: "gone@ghost", Host: "127.0.0.1", Port: 1, Kinds: []string{Kind}}
	a.topo.update(append(a.topo.snapshot(), ghost), time.Now())

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	prefix := "/repair-test/gone/"
	start, err := a.etcd.Get(ctx, prefix, clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	gaps := a.etcdRepairRound(ctx, prefix, etcdGaps{})
	if !gaps.stale[ghost.Id] || len(gaps.stale) != 1 || len(gaps.missing) != 0 {
		t.Fatalf("first round found %+v, want only the ghost stale", gaps)
	}
	a.etcdRepairRound(ctx, prefix, gaps)
	wctx, wcancel := context.WithTimeout(ctx, 5*time.Second)
	defer wcancel()
	var kinds []string
	for resp := range a.etcd.Watch(wctx, prefix, clientv3.WithPrefix(), clientv3.WithRev(start.Header.Revision+1)) {
		for _, ev := range resp.Events {
			if string(ev.Kv.Key) != prefix+ghost.Id {
				t.Fatalf("the repair touched %s, a live member's key", ev.Kv.Key)
			}
			kinds = append(kinds, ev.Type.String())
		}
		if len(kinds) >= 2 {
			break
		}
	}
	if len(kinds) != 2 || kinds[0] != "PUT" || kinds[1] != "DELETE" {
		t.Fatalf("events on the ghost's key: %v, want PUT then DELETE", kinds)
	}
	if got := testutil.ToFloat64(a.metrics.membershipRepairs); got < 1 {
		t.Fatalf("bridge_cluster_membership_repairs_total = %v, want at least 1", got)
	}
}
