package e2e

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/xmtpbridge/bridge/internal/freeport"
	"github.com/xmtpbridge/bridge/internal/testkit"
	"github.com/xmtpbridge/bridge/persistence/pgtest"
)

// pgProxy is a TCP proxy in front of the real Postgres, so a test can cut
// the node off its database and let it back.
type pgProxy struct {
	ln     net.Listener
	target string

	mu    sync.Mutex
	down  bool
	conns []net.Conn
}

func newPGProxy(t testing.TB, target string) *pgProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &pgProxy{ln: ln, target: target}
	t.Cleanup(func() { ln.Close(); p.setDown(true) })
	go p.serve()
	return p
}

func (p *pgProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		down := p.down
		if !down {
			p.conns = append(p.conns, c)
		}
		p.mu.Unlock()
		if down {
			c.Close()
			continue
		}
		go func() {
			up, err := net.Dial("tcp", p.target)
			if err != nil {
				c.Close()
				return
			}
			p.mu.Lock()
			p.conns = append(p.conns, up)
			p.mu.Unlock()
			go func() { io.Copy(up, c); up.Close() }()
			io.Copy(c, up)
			c.Close()
		}()
	}
}

// setDown cuts every connection and refuses new ones, or accepts again.
func (p *pgProxy) setDown(down bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = down
	if down {
		for _, c := range p.conns {
			c.Close()
		}
		p.conns = nil
	}
}

func readyStatus(api string) int {
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(api + "/readyz")
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestReadinessFollowsPostgresAndXMTP turns /readyz red while Postgres is
// unreachable and while the XMTP node (and with it the node's
// subscription) is down, and green again when each comes back.
func TestReadinessFollowsPostgresAndXMTP(t *testing.T) {
	t.Parallel()
	db := pgtest.NewDatabase(t, template)
	u, err := url.Parse(db)
	if err != nil {
		t.Fatal(err)
	}
	proxy := newPGProxy(t, u.Host)
	u.Host = proxy.ln.Addr().String()
	c := newClusterOn(t, db, map[string]string{"DATABASE_URL": u.String()})

	proxy.setDown(true)
	testkit.WaitFor(t, 30*time.Second, func() bool { return readyStatus(c.api) == 503 }, "/readyz 503 with Postgres down")
	proxy.setDown(false)
	testkit.WaitFor(t, 30*time.Second, func() bool { return readyStatus(c.api) == 200 }, "/readyz 200 with Postgres back")

	c.stopXMTPNode()
	testkit.WaitFor(t, 30*time.Second, func() bool { return readyStatus(c.api) == 503 }, "/readyz 503 with the XMTP node down")
	c.startXMTPNode()
	testkit.WaitFor(t, 60*time.Second, func() bool { return readyStatus(c.api) == 200 }, "/readyz 200 with the XMTP node back")
	if c.node.exited() {
		t.Fatalf("the node exited: %v", c.node.err)
	}
}

// TestNodeWithoutItsXMTPNodeExitsWithTheReason starts a node whose XMTP
// node does not answer: it exits 1 and says which dependency failed.
func TestNodeWithoutItsXMTPNodeExitsWithTheReason(t *testing.T) {
	t.Parallel()
	db := pgtest.NewDatabase(t, template)
	dead := testkit.ClosedAddr(t)
	p := start(t, "bridge node", t.TempDir(), map[string]string{
		"DATABASE_URL": db, "BRIDGE_HTTP_ADDR": freeport.Addr(t), "BRIDGE_MASTER_KEY": testkit.MasterKey,
		"BRIDGE_ADMIN_TOKEN": adminToken, "BRIDGE_SIGNUP_KEY": signupKey, "BRIDGE_XMTP_NODE": dead,
	}, "node")
	if code := p.wait(time.Minute); code != 1 {
		t.Fatalf("exit status %d, want 1", code)
	}
	if logs := p.errs.String(); !strings.Contains(logs, "reach xmtp node "+dead+" (BRIDGE_XMTP_NODE)") {
		t.Fatalf("the reason is not in the output:\n%s", testkit.Tail(logs, 3000))
	}
}

// TestReadinessFollowsTheNodeLease turns /readyz red, naming the node
// lease, while Postgres refuses the node lease's renewals and answers every
// other query, and green again once renewals go through.
func TestReadinessFollowsTheNodeLease(t *testing.T) {
	t.Parallel()
	db := pgtest.NewDatabase(t, template)
	c := newClusterOn(t, db, map[string]string{"BRIDGE_LEASE_TTL": "3s"})
	testkit.WaitFor(t, 30*time.Second, func() bool { return readyStatus(c.api) == 200 }, "/readyz 200 after start")
	ctx := testkit.Context(t, 2*time.Minute)
	conn, err := pgx.Connect(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, `
		CREATE FUNCTION refuse_renewal() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN RAISE EXCEPTION 'node lease renewals refused by the test'; END $$;
		CREATE TRIGGER refuse_renewal BEFORE UPDATE ON node_leases FOR EACH ROW EXECUTE FUNCTION refuse_renewal();`); err != nil {
		t.Fatal(err)
	}
	nodeLeaseUp := func() string {
		for _, l := range metric(t, c.api, `bridge_dependency_up{dependency="node_lease"}`) {
			return strings.TrimSpace(strings.TrimPrefix(l, `bridge_dependency_up{dependency="node_lease"}`))
		}
		return ""
	}
	testkit.WaitFor(t, 30*time.Second, func() bool { return readyStatus(c.api) == 503 && nodeLeaseUp() == "0" }, "/readyz 503 with the node lease's renewals refused")
	if up := metric(t, c.api, `bridge_dependency_up{dependency="postgres"}`); len(up) != 1 || !strings.HasSuffix(up[0], " 1") {
		t.Fatalf("postgres reported down while only the renewals fail: %v", up)
	}
	if _, err := conn.Exec(ctx, `DROP TRIGGER refuse_renewal ON node_leases`); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 30*time.Second, func() bool { return readyStatus(c.api) == 200 && nodeLeaseUp() == "1" }, "/readyz 200 with renewals back")
	if c.node.exited() {
		t.Fatalf("the node exited: %v", c.node.err)
	}
}
