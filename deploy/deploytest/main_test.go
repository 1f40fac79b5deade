package deploytest

import (
	"context"
	"fmt"
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

// repoRoot is the repository's root directory.
var repoRoot = func() string {
	dir, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		panic(err)
	}
	return dir
}()

// deployDir is the repository's deploy/ directory.
var deployDir = filepath.Join(repoRoot, "deploy")

// buildVersion is the version stamped into the test binary.
const buildVersion = "v0.0.0-deploytest"

// dockerBuild builds the bridge binary the way the Dockerfile does:
// CGO_ENABLED=0, -trimpath and the version flags. testkit.BuildBridge
// builds it on first use, so fuzzing the parsers builds nothing.
var dockerBuild = testkit.Build{Version: buildVersion, Commit: "deploytest", Static: true}

func TestMain(m *testing.M) { testkit.Main(m) }

// needTool returns the path of an outside program, or fails the test
// naming the Debian package that provides it.
func needTool(t testing.TB, name, pkg string, alt ...string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, a := range alt {
		if st, err := os.Stat(a); err == nil && !st.IsDir() {
			return a
		}
	}
	t.Fatalf("%s is not installed: run scripts/ensure-tools.sh or apt-get install %s", name, pkg)
	return ""
}

// proc is a running outside process that the test stops at its end.
type proc struct {
	name string
	cmd  *exec.Cmd
	out  *testkit.Buffer
	done chan struct{}
	err  error
}

// startProc starts name with args and env (added to PATH and HOME) and
// stops it when the test ends, printing its output if the test failed.
func startProc(t testing.TB, name string, env []string, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}, env...)
	p := &proc{name: filepath.Base(name), cmd: cmd, out: &testkit.Buffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.out, p.out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			t.Logf("--- %s %s output (last 4000 bytes) ---\n%s", p.name, strings.Join(args, " "), testkit.Tail(p.out.String(), 4000))
		}
	})
	return p
}

// stop sends SIGTERM, then SIGKILL after 15 s, and waits for the end.
func (p *proc) stop() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// exited reports whether the process ended, with its error.
func (p *proc) exited() (bool, error) {
	select {
	case <-p.done:
		return true, p.err
	default:
		return false, nil
	}
}

// waitHTTP waits until GET url answers 200, failing early if p exits.
func waitHTTP(t testing.TB, p *proc, url string, timeout time.Duration) {
	t.Helper()
	testkit.WaitFor(t, timeout, func() error {
		if done, err := p.exited(); done {
			t.Fatalf("%s exited while starting: %v\n%s", p.name, err, testkit.Tail(p.out.String(), 4000))
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		return nil
	}, "%s to answer %s", p.name, url)
}

// template migrates both schemas, so a test database is ready for a node.
var template = pgtest.Template{Name: "deploytest", Migrate: system.Migrate}

const (
	testSignupKey  = "sk_deploytest_signup_0123456789"
	testAdminToken = "adm_deploytest_admin_0123456789"
)

// node is a running bridge node (`bridge node`) with its own `bridge
// xmtp-node` on a fresh database.
type node struct {
	id   string
	addr string // host:port of the HTTP API
	env  map[string]string
}

// startNode starts `bridge xmtp-node` and `bridge node` on a new database
// and waits until the node is ready. extra adds to the node's environment.
func startNode(t testing.TB, id string, extra map[string]string) *node {
	t.Helper()
	db := pgtest.NewDatabase(t, template)
	grpc, gw, ops := freeport.Addr(t), freeport.Addr(t), freeport.Addr(t)
	xmtp := startProc(t, testkit.BuildBridge(t, dockerBuild), []string{
		"DATABASE_URL=" + db, "BRIDGE_XMTP_NODE_GRPC_ADDR=" + grpc, "BRIDGE_XMTP_NODE_HTTP_ADDR=" + gw,
		"BRIDGE_XMTP_NODE_OPS_ADDR=" + ops, "BRIDGE_LOG_LEVEL=warn",
	}, "xmtp-node")
	waitHTTP(t, xmtp, "http://"+ops+"/readyz", 60*time.Second)

	n := &node{id: id, addr: freeport.Addr(t), env: map[string]string{
		"DATABASE_URL": db, "BRIDGE_HTTP_ADDR": "", "BRIDGE_NODE_ID": id,
		"BRIDGE_MASTER_KEY": testkit.NewMasterKey(), "BRIDGE_ADMIN_TOKEN": testAdminToken,
		"BRIDGE_SIGNUP_KEY": testSignupKey, "BRIDGE_XMTP_NODE": grpc, "BRIDGE_CANARY_INTERVAL": "0",
		"BRIDGE_LOG_LEVEL": "info", "BRIDGE_SHUTDOWN_TIMEOUT": "10s",
		"BRIDGE_DATA_DIR": t.TempDir(), // the plug-ins' compiled modules
	}}
	n.env["BRIDGE_HTTP_ADDR"] = n.addr
	for k, v := range extra {
		n.env[k] = v
	}
	var env []string
	for k, v := range n.env {
		env = append(env, k+"="+v)
	}
	p := startProc(t, testkit.BuildBridge(t, dockerBuild), env, "node")
	waitHTTP(t, p, "http://"+n.addr+"/readyz", 90*time.Second)
	return n
}
