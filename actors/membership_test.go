package actors

import (
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/cluster"
	"github.com/prometheus/client_golang/prometheus/testutil"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/xmtpbridge/bridge/internal/freeport"
)

// startEtcd runs Debian's etcd on free loopback ports until the test ends
// and returns its client endpoint.
func startEtcd(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("etcd")
	if err != nil {
		t.Fatalf("etcd is not installed: run scripts/ensure-tools.sh etcd (Debian's etcd-server)")
	}
	client, peer := freeport.Addr(t), freeport.Addr(t)
	dir := t.TempDir()
	cmd := exec.Command(bin, "--name", "actors", "--data-dir", filepath.Join(dir, "data"),
		"--listen-client-urls", "http://"+client, "--advertise-client-urls", "http://"+client,
		"--listen-peer-urls", "http://"+peer, "--initial-advertise-peer-urls", "http://"+peer,
		"--initial-cluster", "actors=http://"+peer, "--log-level", "warn")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start etcd: %v", err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	waitFor(t, 30*time.Second, "etcd to answer", func() bool {
		resp, err := http.Get("http://" + client + "/health")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return client
}

// TestEtcdRepairAnnouncesAMissedMemberAgain gives one member of a
// two-member etcd cluster the view a missed watch event leaves (the other
// member absent) and checks the repair: the first round only notes the
// gap, the second writes the missing member's key back unchanged, under
// its own lease, and counts it.
func TestEtcdRepairAnnouncesAMissedMemberAgain(t *testing.T) {
	e := newEnv(t)
	endpoint := startEtcd(t)
	etcdCluster := func(c *Config) {
		c.Provider, c.EtcdEndpoints, c.EtcdPrefix, c.ClusterName = ProviderEtcd, []string{endpoint}, "/repair-test", "repair"
	}
	a, _ := e.runtime("a", etcdCluster)
	b, _ := e.runtime("b", etcdCluster)
	waitFor(t, 30*time.Second, "both members to see each other", func() bool { return a.topo.size() == 2 && b.topo.size() == 2 })

	var self *cluster.Member
	for _, m := range a.topo.snapshot() {
		if m.Address() == a.system.Address() {
			self = m
		}
	}
	a.topo.update([]*cluster.Member{self}, time.Now()) // b's registration "missed"

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	prefix := "/repair-test/repair/"
	before, err := a.etcd.Get(ctx, prefix, clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	revs, leases := map[string]int64{}, map[string]int64{}
	for _, kv := range before.Kvs {
		revs[string(kv.Key)], leases[string(kv.Key)] = kv.ModRevision, kv.Lease
	}
	missed := a.etcdRepairRound(ctx, prefix, nil)
	if len(missed) != 1 {
		t.Fatalf("first round noted %v missing, want b's member", missed)
	}
	a.etcdRepairRound(ctx, prefix, missed)
	after, err := a.etcd.Get(ctx, prefix, clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	rewritten := 0
	for _, kv := range after.Kvs {
		k := string(kv.Key)
		if kv.Lease != leases[k] {
			t.Errorf("%s: lease %d after the repair, want its own %d", k, kv.Lease, leases[k])
		}
		if kv.ModRevision > revs[k] {
			rewritten++
		}
	}
	if rewritten < 1 {
		t.Fatalf("no member key was written back (revisions before %v)", revs)
	}
	if got := testutil.ToFloat64(a.metrics.membershipRepairs); got < 1 {
		t.Fatalf("bridge_cluster_membership_repairs_total = %v, want at least 1", got)
	}
}
