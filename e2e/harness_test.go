package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/xmtpbridge/bridge/internal/freeport"
	"github.com/xmtpbridge/bridge/internal/testkit"
	"github.com/xmtpbridge/bridge/persistence/pgtest"
	"github.com/xmtpbridge/bridge/system"
)

func TestMain(m *testing.M) { testkit.Main(m) }

// template migrates both schemas the binary uses, so a test database is a
// clone ready for the node.
var template = pgtest.Template{Name: "e2e", Migrate: system.Migrate}

const (
	signupKey  = "sk_e2e_signup_key_0123456789"
	adminToken = "adm_e2e_admin_token_0123456789"
)

// proc is one running bridge process.
type proc struct {
	t    testing.TB
	name string
	cmd  *exec.Cmd
	out  *testkit.Buffer // stdout
	errs *testkit.Buffer // stderr (logs)
	done chan struct{}
	err  error // set when done is closed
}

// start runs the bridge binary with args and env (on top of PATH and HOME)
// in dir.
func start(t testing.TB, name, dir string, env map[string]string, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(testkit.BuildBridge(t, testkit.Build{}), args...)
	cmd.Dir = dir
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	p := &proc{t: t, name: name, cmd: cmd, out: &testkit.Buffer{}, errs: &testkit.Buffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.out, p.errs
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("--- %s stderr (last 6000 bytes) ---\n%s", name, testkit.Tail(p.errs.String(), 6000))
		}
	})
	return p
}

// exited reports whether the process ended.
func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// wait waits for the process to end and returns its exit code.
func (p *proc) wait(timeout time.Duration) int {
	p.t.Helper()
	select {
	case <-p.done:
	case <-time.After(timeout):
		p.t.Fatalf("%s did not exit within %s", p.name, timeout)
	}
	if p.err == nil {
		return 0
	}
	if ee, ok := p.err.(*exec.ExitError); ok {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal())
		}
		return ee.ExitCode()
	}
	p.t.Fatalf("%s: wait: %v", p.name, p.err)
	return -1
}

// waitHTTP waits until GET url answers 200 or the process exits.
func (p *proc) waitHTTP(url string, timeout time.Duration) {
	p.t.Helper()
	testkit.WaitFor(p.t, timeout, func() bool {
		if p.exited() {
			p.t.Fatalf("%s exited while starting: %v\n%s", p.name, p.err, testkit.Tail(p.errs.String(), 4000))
		}
		resp, err := http.Get(url)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	}, "%s to answer %s", p.name, url)
}

// cluster is a bridge node with its own database and, unless it runs in
// dev mode, a separate `bridge xmtp-node` process, so the node can be
// killed while XMTP stays up.
type cluster struct {
	t   testing.TB
	dir string
	db  string
	env map[string]string
	// xmtpEnv is what the tuning sets for the XMTP node as well.
	xmtpEnv  map[string]string
	api      string // http://host:port of the bridge API
	xmtpGRPC string
	xmtpHTTP string
	xmtpOps  string
	xmtpNode *proc
	node     *proc
}

// newCluster starts an XMTP node process and a bridge node process on a
// new database. tune changes the node's environment before it starts.
func newCluster(t testing.TB, tune map[string]string) *cluster {
	t.Helper()
	return newClusterOn(t, pgtest.NewDatabase(t, template), tune)
}

// newClusterOn is newCluster on the database db.
func newClusterOn(t testing.TB, db string, tune map[string]string) *cluster {
	t.Helper()
	c := prepareCluster(t, db, tune)
	c.startNode()
	return c
}

// prepareCluster starts the XMTP node process on the database db and
// prepares the bridge node's environment, without starting the node.
func prepareCluster(t testing.TB, db string, tune map[string]string) *cluster {
	t.Helper()
	c := &cluster{t: t, dir: t.TempDir(), db: db}
	c.xmtpGRPC, c.xmtpHTTP, c.xmtpOps = freeport.Addr(t), freeport.Addr(t), freeport.Addr(t)
	// A load test raises the XMTP node's publish bound through its tuning.
	if v, ok := tune["BRIDGE_XMTP_MAX_PUBLISHES_IN_FLIGHT"]; ok {
		c.xmtpEnv = map[string]string{"BRIDGE_XMTP_MAX_PUBLISHES_IN_FLIGHT": v}
	}
	// A tuning key with the xmtpOnly prefix is for the XMTP node alone.
	for k, v := range tune {
		if name, ok := strings.CutPrefix(k, xmtpOnly); ok {
			if c.xmtpEnv == nil {
				c.xmtpEnv = map[string]string{}
			}
			c.xmtpEnv[name] = v
		}
	}
	c.startXMTPNode()

	httpAddr := freeport.Addr(t)
	c.api = "http://" + httpAddr
	c.env = map[string]string{
		"DATABASE_URL": c.db, "BRIDGE_HTTP_ADDR": httpAddr, "BRIDGE_NODE_ID": "e2e-node-1",
		"BRIDGE_MASTER_KEY": testkit.NewMasterKey(), "BRIDGE_ADMIN_TOKEN": adminToken,
		"BRIDGE_SIGNUP_KEY": signupKey, "BRIDGE_XMTP_NODE": c.xmtpGRPC, "BRIDGE_ALLOW_PRIVATE_TARGETS": "true",
		"BRIDGE_LEASE_TTL": "3s", "BRIDGE_RECONCILE_INTERVAL": "1s", "BRIDGE_SWEEP_INTERVAL": "300ms",
		"BRIDGE_CANARY_INTERVAL": "0", "BRIDGE_SHUTDOWN_TIMEOUT": "30s", "BRIDGE_LOG_LEVEL": "info",
	}
	for k, v := range tune {
		if !strings.HasPrefix(k, xmtpOnly) {
			c.env[k] = v
		}
	}
	return c
}

// xmtpOnly prefixes a tuning key that prepareCluster gives the XMTP node
// process instead of the bridge node: "xmtp:BRIDGE_PPROF_ADDR".
const xmtpOnly = "xmtp:"

// startXMTPNode starts (or restarts) the XMTP node process and waits
// until it is ready.
func (c *cluster) startXMTPNode() {
	c.t.Helper()
	env := map[string]string{
		"DATABASE_URL": c.db, "BRIDGE_XMTP_NODE_GRPC_ADDR": c.xmtpGRPC, "BRIDGE_XMTP_NODE_HTTP_ADDR": c.xmtpHTTP,
		"BRIDGE_XMTP_NODE_OPS_ADDR": c.xmtpOps, "BRIDGE_LOG_LEVEL": "warn",
	}
	// Tests run side by side on one Postgres server: the XMTP node of
	// each keeps to pgx's four connections of a two-core machine unless
	// a test (the scale benchmark) asks for more.
	env["BRIDGE_XMTP_NODE_MAX_CONNS"] = "4"
	for k, v := range c.xmtpEnv {
		env[k] = v
	}
	c.xmtpNode = start(c.t, "xmtp-node", c.dir, env, "xmtp-node")
	c.xmtpNode.waitHTTP("http://"+c.xmtpOps+"/readyz", 30*time.Second)
}

// stopXMTPNode stops the XMTP node process with SIGTERM.
func (c *cluster) stopXMTPNode() {
	c.t.Helper()
	if err := c.xmtpNode.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		c.t.Fatal(err)
	}
	c.xmtpNode.wait(30 * time.Second)
}

// startNode starts (or restarts) the bridge node and waits until it is
// ready.
func (c *cluster) startNode() {
	c.t.Helper()
	c.node = start(c.t, "bridge node", c.dir, c.env, "node")
	c.node.waitHTTP(c.api+"/readyz", 60*time.Second)
}

// call sends a JSON request to the bridge API and decodes the JSON answer.
func call(t testing.TB, method, url, token string, body any) (int, map[string]any) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		raw, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if len(raw) > 0 && raw[0] == '{' {
		if err := json.Unmarshal(raw, &out); err != nil {
			t.Fatalf("%s %s: decode %q: %v", method, url, raw, err)
		}
	}
	return resp.StatusCode, out
}

// mustCall is call that fails the test on an unexpected status.
func mustCall(t testing.TB, want int, method, url, token string, body any) map[string]any {
	t.Helper()
	status, out := call(t, method, url, token, body)
	if status != want {
		t.Fatalf("%s %s: status %d, want %d: %v", method, url, status, want, out)
	}
	return out
}

func str(m map[string]any, path ...string) string {
	var cur any = m
	for _, p := range path {
		mm, ok := cur.(map[string]any)
		if !ok {
			return ""
		}
		cur = mm[p]
	}
	s, _ := cur.(string)
	return s
}

// jsDir is the directory of the xmtp-js scripts.
func jsDir(t testing.TB) string {
	t.Helper()
	dir, err := filepath.Abs(filepath.Join("..", "xmtp", "interop", "js"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "@xmtp", "xmtp-js", "package.json")); err != nil {
		t.Fatalf("xmtp-js is not installed: run scripts/ensure-node-deps.sh (make test does): %v", err)
	}
	if _, err := exec.LookPath("node"); err != nil {
		t.Fatalf("node is not on PATH: install Node.js 20 or newer: %v", err)
	}
	return dir
}

// jsEvent is one JSON line printed by an xmtp-js script.
type jsEvent struct {
	Event   string `json:"event"`
	Address string `json:"address"`
	ID      string `json:"id"`
	Sender  string `json:"sender"`
	Text    string `json:"text"`
}

// jsProc is a running xmtp-js script.
type jsProc struct {
	t      testing.TB
	events chan jsEvent
	done   chan error
	stderr *testkit.Buffer
}

// runJS starts node <script> args... in the scripts' directory.
func runJS(t testing.TB, script string, args ...string) *jsProc {
	t.Helper()
	dir := jsDir(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	cmd := exec.CommandContext(ctx, "node", append([]string{filepath.Join(dir, script)}, args...)...)
	cmd.Dir = dir
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p := &jsProc{t: t, events: make(chan jsEvent, 16), done: make(chan error, 1), stderr: &testkit.Buffer{}}
	cmd.Stderr = p.stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start node %s: %v", script, err)
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			var e jsEvent
			if json.Unmarshal(sc.Bytes(), &e) == nil {
				p.events <- e
			}
		}
		p.done <- cmd.Wait()
	}()
	return p
}

// next waits for the script's next event, which must be named want.
func (p *jsProc) next(want string, timeout time.Duration) jsEvent {
	p.t.Helper()
	check := func(e jsEvent) jsEvent {
		if e.Event != want {
			p.t.Fatalf("xmtp-js event %+v, want %q", e, want)
		}
		return e
	}
	select {
	case e := <-p.events:
		return check(e)
	case err := <-p.done:
		// The reader sends every event before the end, but select picks
		// at random among ready cases: a script that exits right after
		// its last line leaves both ready. Its events come first.
		select {
		case e := <-p.events:
			p.done <- err
			return check(e)
		default:
		}
		p.t.Fatalf("xmtp-js script ended before %q: %v\n%s", want, err, p.stderr.String())
	case <-time.After(timeout):
		p.t.Fatalf("xmtp-js script: no %q event within %s\n%s", want, timeout, p.stderr.String())
	}
	return jsEvent{}
}

// metric returns the lines of the node's /metrics that start with name.
func metric(t testing.TB, api, name string) []string {
	t.Helper()
	resp, err := http.Get(api + "/metrics")
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	var out []string
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), name) {
			out = append(out, sc.Text())
		}
	}
	return out
}
