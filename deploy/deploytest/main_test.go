package deploytest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/xmtpbridge/bridge/internal/freeport"
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

// buildDir holds the binary; TestMain removes it at the end.
var buildDir string

// buildVersion is the version stamped into the test binary.
const buildVersion = "v0.0.0-deploytest"

var (
	buildOnce sync.Once
	buildPath string
	buildErr  error
)

// bridgeBin returns the bridge binary, built once per test process the
// way the Dockerfile builds it: CGO_ENABLED=0, -trimpath and the version
// flags. It is built on first use, so fuzzing the parsers builds nothing.
func bridgeBin(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		path := filepath.Join(buildDir, "bridge")
		build := exec.Command(goBin(), "build", "-trimpath",
			"-ldflags", "-X main.version="+buildVersion+" -X main.commit=deploytest",
			"-o", path, "./cmd/bridge")
		build.Dir = repoRoot
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := build.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("build ./cmd/bridge with CGO_ENABLED=0: %v\n%s", err, out)
			return
		}
		buildPath = path
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return buildPath
}

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "bridge-deploytest-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "deploytest: make temp dir:", err)
		os.Exit(1)
	}
	buildDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// goBin is the go command of the toolchain running the tests.
func goBin() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return filepath.Join(runtime.GOROOT(), "bin", "go")
}

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

// freePort returns a loopback TCP port that was free a moment ago and was
// not handed out before in this process.
func freePort(t testing.TB) int {
	t.Helper()
	return freeport.Port(t)
}

// freeAddr returns 127.0.0.1:<free port>.
func freeAddr(t testing.TB) string {
	return fmt.Sprintf("127.0.0.1:%d", freePort(t))
}

// waitFor polls cond every 50ms until it returns nil or timeout passes,
// then fails with the last error.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s: %v", timeout, what, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// syncBuffer is a bytes.Buffer safe for a process's output.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// proc is a running outside process that the test stops at its end.
type proc struct {
	name string
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan struct{}
	err  error
}

// startProc starts name with args and env (added to PATH and HOME) and
// stops it when the test ends, printing its output if the test failed.
func startProc(t testing.TB, name string, env []string, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}, env...)
	p := &proc{name: filepath.Base(name), cmd: cmd, out: &syncBuffer{}, done: make(chan struct{})}
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
			t.Logf("--- %s %s output (last 4000 bytes) ---\n%s", p.name, strings.Join(args, " "), tail(p.out.String(), 4000))
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

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// waitHTTP waits until GET url answers 200, failing early if p exits.
func waitHTTP(t testing.TB, p *proc, url string, timeout time.Duration) {
	t.Helper()
	waitFor(t, timeout, p.name+" to answer "+url, func() error {
		if done, err := p.exited(); done {
			t.Fatalf("%s exited while starting: %v\n%s", p.name, err, tail(p.out.String(), 4000))
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
	})
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
	grpc, gw, ops := freeAddr(t), freeAddr(t), freeAddr(t)
	xmtp := startProc(t, bridgeBin(t), []string{
		"DATABASE_URL=" + db, "BRIDGE_XMTP_NODE_GRPC_ADDR=" + grpc, "BRIDGE_XMTP_NODE_HTTP_ADDR=" + gw,
		"BRIDGE_XMTP_NODE_OPS_ADDR=" + ops, "BRIDGE_LOG_LEVEL=warn",
	}, "xmtp-node")
	waitHTTP(t, xmtp, "http://"+ops+"/readyz", 60*time.Second)

	key := make([]byte, 32)
	_, _ = rand.Read(key)
	n := &node{id: id, addr: freeAddr(t), env: map[string]string{
		"DATABASE_URL": db, "BRIDGE_HTTP_ADDR": "", "BRIDGE_NODE_ID": id,
		"BRIDGE_MASTER_KEY": base64.StdEncoding.EncodeToString(key), "BRIDGE_ADMIN_TOKEN": testAdminToken,
		"BRIDGE_SIGNUP_KEY": testSignupKey, "BRIDGE_XMTP_NODE": grpc, "BRIDGE_CANARY_INTERVAL": "0",
		"BRIDGE_LOG_LEVEL": "info", "BRIDGE_SHUTDOWN_TIMEOUT": "10s",
	}}
	n.env["BRIDGE_HTTP_ADDR"] = n.addr
	for k, v := range extra {
		n.env[k] = v
	}
	var env []string
	for k, v := range n.env {
		env = append(env, k+"="+v)
	}
	p := startProc(t, bridgeBin(t), env, "node")
	waitHTTP(t, p, "http://"+n.addr+"/readyz", 90*time.Second)
	return n
}
