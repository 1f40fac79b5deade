package e2e

import (
	"strings"
	"syscall"
	"testing"
	"time"
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
	if err := c.etcd.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	resumed := false
	resume := func() {
		if !resumed {
			resumed = true
			_ = c.etcd.cmd.Process.Signal(syscall.SIGCONT)
		}
	}
	t.Cleanup(resume)
	waitFor(t, 30*time.Second, "/readyz to go red while etcd is paused", func() bool { return readyStatus(n.api) == 503 })
	if up := etcdUp(t, n); up != "0" {
		t.Fatalf("bridge_dependency_up{dependency=\"etcd\"} = %q while etcd is paused, want 0", up)
	}
	resume()
	waitFor(t, 30*time.Second, "/readyz to go green once etcd continues", func() bool { return readyStatus(n.api) == 200 })
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
