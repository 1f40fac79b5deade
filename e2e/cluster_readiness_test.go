package e2e

import (
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/xmtpbridge/bridge/internal/freeport"
	"github.com/xmtpbridge/bridge/internal/testkit"
	"github.com/xmtpbridge/bridge/persistence/pgtest"
)

// TestClusterReadinessFollowsEtcd pauses etcd under a node of an etcd
// cluster: the node's /readyz goes red and bridge_dependency_up names
// etcd, and both recover when etcd continues. The node keeps running.
func TestClusterReadinessFollowsEtcd(t *testing.T) {
	t.Parallel()
	c := newBridgeCluster(t, clusterOpts{provider: "etcd", nodes: 1, name: "etcd-readiness"})
	n := c.nodes[0]
	if up := etcdUp(t, n); up != "1" {
		t.Fatalf("bridge_dependency_up{dependency=\"etcd\"} = %q before the pause, want 1", up)
	}
	if err := c.etcd.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	resumed := false
	resume := func() {
		if !resumed {
			resumed = true
			_ = c.etcd.Signal(syscall.SIGCONT)
		}
	}
	t.Cleanup(resume)
	testkit.WaitFor(t, 30*time.Second, func() bool { return readyStatus(n.api) == 503 }, "/readyz to go red while etcd is paused")
	if up := etcdUp(t, n); up != "0" {
		t.Fatalf("bridge_dependency_up{dependency=\"etcd\"} = %q while etcd is paused, want 0", up)
	}
	resume()
	testkit.WaitFor(t, 30*time.Second, func() bool { return readyStatus(n.api) == 200 }, "/readyz to go green once etcd continues")
	if up := etcdUp(t, n); up != "1" {
		t.Fatalf("bridge_dependency_up{dependency=\"etcd\"} = %q after etcd continued, want 1", up)
	}
	if !n.alive() {
		t.Fatalf("the node exited while etcd was paused: %v", n.proc.err)
	}
}

// etcdUp reads the node's bridge_dependency_up{dependency="etcd"}.
func etcdUp(t *testing.T, n *clusterNode) string {
	t.Helper()
	for _, line := range metric(t, n.api, "bridge_dependency_up") {
		if strings.Contains(line, `dependency="etcd"`) {
			f := strings.Fields(line)
			return f[len(f)-1]
		}
	}
	return ""
}

// TestNodeWithoutItsMembershipExitsWithTheReason starts nodes whose
// membership engine cannot work: an etcd endpoint where nothing listens,
// and the Kubernetes provider outside a pod. Each exits 1 and says why.
func TestNodeWithoutItsMembershipExitsWithTheReason(t *testing.T) {
	t.Parallel()
	c := &cluster{t: t, dir: t.TempDir(), db: pgtest.NewDatabase(t, template)}
	c.xmtpGRPC, c.xmtpHTTP, c.xmtpOps = freeport.Addr(t), freeport.Addr(t), freeport.Addr(t)
	c.startXMTPNode()
	dead := testkit.ClosedAddr(t)
	for _, tc := range []struct {
		provider string
		env      map[string]string
		reason   string
	}{
		{"etcd", map[string]string{"BRIDGE_ETCD_ENDPOINTS": dead}, "etcd " + dead + " is not reachable"},
		{"kubernetes", nil, "kubernetes provider (it must run in a pod with a service account)"},
	} {
		env := map[string]string{
			"DATABASE_URL": c.db, "BRIDGE_HTTP_ADDR": freeport.Addr(t), "BRIDGE_MASTER_KEY": testkit.MasterKey,
			"BRIDGE_ADMIN_TOKEN": adminToken, "BRIDGE_SIGNUP_KEY": signupKey, "BRIDGE_XMTP_NODE": c.xmtpGRPC,
			"BRIDGE_CLUSTER_PROVIDER": tc.provider,
		}
		for k, v := range tc.env {
			env[k] = v
		}
		p := start(t, "bridge node ("+tc.provider+")", c.dir, env, "node")
		if code := p.wait(time.Minute); code != 1 {
			t.Fatalf("%s: exit status %d, want 1\n%s", tc.provider, code, testkit.Tail(p.errs.String(), 3000))
		}
		if logs := p.errs.String(); !strings.Contains(logs, tc.reason) {
			t.Fatalf("%s: the reason %q is not in the output:\n%s", tc.provider, tc.reason, testkit.Tail(logs, 3000))
		}
	}
}
