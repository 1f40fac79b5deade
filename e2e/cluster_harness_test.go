package e2e

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/xmtpbridge/bridge/actors/webhook/webhooktest"
	"github.com/xmtpbridge/bridge/internal/freeport"
	"github.com/xmtpbridge/bridge/internal/testkit"
	"github.com/xmtpbridge/bridge/persistence/pgtest"
)

// This file is the harness of the multi-process cluster tests: one XMTP
// node process, one database, optionally one etcd process, and N
// `bridge node` processes that form one cluster over protoactor's etcd or
// automanaged provider.

// clusterOpts configures newBridgeCluster.
type clusterOpts struct {
	provider string            // "etcd" or "automanaged"
	nodes    int               // bridge node processes, named c-node-1..N
	name     string            // BRIDGE_CLUSTER_NAME; empty is "e2e-cluster"
	tune     map[string]string // environment on top of the defaults, for every node
}

// bridgeCluster is N bridge node processes sharing one database, one XMTP
// node process, one master key and (with etcd) one etcd process.
type bridgeCluster struct {
	t        testing.TB
	x        *cluster // the XMTP node process, the database and the work directory
	etcd     *testkit.Etcd
	provider string
	name     string
	base     map[string]string // environment every node starts from
	nodes    []*clusterNode
	apiKey   string // an account's API key, set by createBridges
}

// clusterNode is one bridge node process of a cluster. Its id, HTTP
// address and cluster ports stay the same across restarts.
type clusterNode struct {
	c    *bridgeCluster
	id   string
	api  string // http://host:port
	env  map[string]string
	proc *proc
}

// newBridgeCluster starts the XMTP node, etcd when the provider is etcd,
// and opts.nodes bridge nodes, and waits until every node is ready and sees
// every member.
func newBridgeCluster(t testing.TB, opts clusterOpts) *bridgeCluster {
	t.Helper()
	if opts.provider != "etcd" && opts.provider != "automanaged" {
		t.Fatalf("newBridgeCluster: provider %q, want etcd or automanaged", opts.provider)
	}
	db := pgtest.NewDatabase(t, template)
	x := &cluster{t: t, dir: t.TempDir(), db: db}
	x.xmtpGRPC, x.xmtpHTTP, x.xmtpOps = freeport.Addr(t), freeport.Addr(t), freeport.Addr(t)
	x.startXMTPNode()
	c := &bridgeCluster{t: t, x: x, provider: opts.provider, name: opts.name}
	if c.name == "" {
		c.name = "e2e-cluster"
	}
	if opts.provider == "etcd" {
		c.etcd = testkit.StartEtcd(t, "e2e")
	}
	c.base = map[string]string{
		"DATABASE_URL": db, "BRIDGE_MASTER_KEY": testkit.NewMasterKey(),
		"BRIDGE_ADMIN_TOKEN": adminToken, "BRIDGE_SIGNUP_KEY": signupKey, "BRIDGE_XMTP_NODE": x.xmtpGRPC,
		"BRIDGE_ALLOW_PRIVATE_TARGETS": "true", "BRIDGE_LEASE_TTL": "4s", "BRIDGE_RECONCILE_INTERVAL": "1s",
		"BRIDGE_SWEEP_INTERVAL": "300ms", "BRIDGE_CANARY_INTERVAL": "0", "BRIDGE_SHUTDOWN_TIMEOUT": "30s",
		"BRIDGE_LOG_LEVEL":        "info",
		"BRIDGE_CLUSTER_PROVIDER": opts.provider, "BRIDGE_CLUSTER_NAME": c.name,
		"BRIDGE_CLUSTER_HOST": "127.0.0.1", "BRIDGE_CLUSTER_ADVERTISED_HOST": "127.0.0.1",
	}
	if c.etcd != nil {
		c.base["BRIDGE_ETCD_ENDPOINTS"] = c.etcd.Endpoint
		c.base["BRIDGE_ETCD_PREFIX"] = "/xmtp-bridge-e2e"
	}
	for k, v := range opts.tune {
		c.base[k] = v
	}
	var peers []string
	for i := range opts.nodes {
		n := c.newNode(fmt.Sprintf("c-node-%d", i+1), nil)
		c.nodes = append(c.nodes, n)
		if pp := n.env["BRIDGE_CLUSTER_PROVIDER_PORT"]; pp != "" {
			peers = append(peers, "127.0.0.1:"+pp)
		}
	}
	if opts.provider == "automanaged" {
		for _, n := range c.nodes {
			n.env["BRIDGE_CLUSTER_PEERS"] = strings.Join(peers, ",")
		}
	}
	// Start every process first, then wait: the nodes come up together.
	for _, n := range c.nodes {
		n.launch()
	}
	for _, n := range c.nodes {
		n.waitReady(90 * time.Second)
	}
	c.waitMembers(c.nodes, 60*time.Second)
	return c
}

// newNode prepares (without starting) a node named id with fresh ports on
// top of the cluster's environment and then tune. An automanaged node made
// here lists only itself as a peer until the caller says otherwise.
func (c *bridgeCluster) newNode(id string, tune map[string]string) *clusterNode {
	httpAddr := freeport.Addr(c.t)
	n := &clusterNode{c: c, id: id, api: "http://" + httpAddr, env: map[string]string{}}
	for k, v := range c.base {
		n.env[k] = v
	}
	n.env["BRIDGE_NODE_ID"] = id
	n.env["BRIDGE_HTTP_ADDR"] = httpAddr
	n.env["BRIDGE_CLUSTER_PORT"] = portOf(c.t, freeport.Addr(c.t))
	if c.provider == "automanaged" {
		pp := portOf(c.t, freeport.Addr(c.t))
		n.env["BRIDGE_CLUSTER_PROVIDER_PORT"] = pp
		n.env["BRIDGE_CLUSTER_PEERS"] = "127.0.0.1:" + pp
	}
	for k, v := range tune {
		n.env[k] = v
	}
	return n
}

func portOf(t testing.TB, addr string) string {
	t.Helper()
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	return port
}

// launch starts the node process without waiting for it.
func (n *clusterNode) launch() {
	n.c.t.Helper()
	n.proc = start(n.c.t, n.id, n.c.x.dir, n.env, "node")
}

// waitReady waits until the node's /readyz answers 200.
func (n *clusterNode) waitReady(timeout time.Duration) {
	n.c.t.Helper()
	n.proc.waitHTTP(n.api+"/readyz", timeout)
}

// restart starts the node again with the same id, ports and environment,
// and waits until it is ready.
func (n *clusterNode) restart() {
	n.c.t.Helper()
	if !n.proc.exited() {
		n.c.t.Fatalf("restart %s: the process still runs", n.id)
	}
	n.launch()
	n.waitReady(90 * time.Second)
}

// kill9 kills the node with SIGKILL and checks that it died of it.
func (n *clusterNode) kill9() {
	n.c.t.Helper()
	if err := n.proc.cmd.Process.Kill(); err != nil {
		n.c.t.Fatalf("kill -9 %s: %v", n.id, err)
	}
	if code := n.proc.wait(10 * time.Second); code != 128+int(syscall.SIGKILL) {
		n.c.t.Fatalf("%s exit status %d, want death by SIGKILL", n.id, code)
	}
}

// sigterm stops the node with SIGTERM and returns its exit code.
func (n *clusterNode) sigterm(timeout time.Duration) int {
	n.c.t.Helper()
	if err := n.proc.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		n.c.t.Fatalf("SIGTERM %s: %v", n.id, err)
	}
	return n.proc.wait(timeout)
}

// pause stops the process with SIGSTOP: it keeps its sockets and its
// belief that it owns its identities.
func (n *clusterNode) pause() {
	n.c.t.Helper()
	if err := syscall.Kill(n.proc.cmd.Process.Pid, syscall.SIGSTOP); err != nil {
		n.c.t.Fatalf("SIGSTOP %s: %v", n.id, err)
	}
}

// resume continues a paused process with SIGCONT.
func (n *clusterNode) resume() {
	n.c.t.Helper()
	if err := syscall.Kill(n.proc.cmd.Process.Pid, syscall.SIGCONT); err != nil {
		n.c.t.Fatalf("SIGCONT %s: %v", n.id, err)
	}
}

// alive reports whether the node's process runs.
func (n *clusterNode) alive() bool { return n.proc != nil && !n.proc.exited() }

// clusterBridge is one bridge created over REST.
type clusterBridge struct {
	ID      string
	Address string
	slug    string // its path at the target
}

// createBridges creates an account and n json bridges whose forward target
// is tg, each through the next node in turn, several at a time.
func (c *bridgeCluster) createBridges(tg *webhooktest.Target, n int) []clusterBridge {
	c.t.Helper()
	entry := c.live()[0]
	acct := mustCall(c.t, 201, "POST", entry.api+"/v1/accounts", "", map[string]any{"name": "owner", "signupKey": signupKey})
	c.apiKey = str(acct, "apiKey")
	out := make([]clusterBridge, n)
	errs := make(chan error, n)
	work := make(chan int)
	var wg sync.WaitGroup
	nodes := c.live()
	for range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				node := nodes[i%len(nodes)]
				slug := randomSlug()
				var created struct {
					Bridge struct {
						ID      string `json:"id"`
						Address string `json:"address"`
					} `json:"bridge"`
					WebhookSecret string `json:"webhookSecret"`
				}
				status, raw, err := doJSON(&http.Client{Timeout: time.Minute}, "POST", node.api+"/v1/bridges", c.apiKey, map[string]any{
					"name": fmt.Sprintf("b%03d", i), "forward": map[string]any{
						"url": tg.URL + "/hook/" + slug, "bodyFormat": "json", "replyMode": "reply", "maxConcurrency": 16,
					},
				}, &created)
				if err == nil && status != 201 {
					err = fmt.Errorf("status %d: %s", status, testkit.Tail(string(raw), 300))
				}
				if err != nil {
					errs <- fmt.Errorf("create bridge %d through %s: %w", i, node.id, err)
					continue
				}
				tg.SetHookSecret(slug, created.WebhookSecret)
				out[i] = clusterBridge{ID: created.Bridge.ID, Address: created.Bridge.Address, slug: slug}
			}
		}()
	}
	for i := range n {
		work <- i
	}
	close(work)
	wg.Wait()
	close(errs)
	for err := range errs {
		c.t.Fatal(err)
	}
	return out
}

// randomSlug returns 16 random hex digits.
func randomSlug() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// sortedKeys returns the keys of m in order.
func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// errorBody checks that raw is the API's JSON error: ok false, a code and
// a message.
func errorBody(raw []byte) error {
	var e struct {
		OK    *bool  `json:"ok"`
		Code  string `json:"code"`
		Error string `json:"error"`
	}
	if err := json.Unmarshal(raw, &e); err != nil {
		return fmt.Errorf("not JSON: %q", testkit.Tail(string(raw), 300))
	}
	if e.OK == nil || *e.OK || e.Code == "" || e.Error == "" {
		return errors.New("not the API's error shape {ok:false, code, error}: " + testkit.Tail(string(raw), 300))
	}
	return nil
}
