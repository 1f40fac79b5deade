package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/xmtpbridge/bridge/internal/testkit"
	"github.com/xmtpbridge/bridge/persistence/pgtest"
	"github.com/xmtpbridge/bridge/system"
	"github.com/xmtpbridge/bridge/system/config"
)

const testVersion = "v9.9.9-test"

func TestMain(m *testing.M) { testkit.Main(m) }

// bridgeBinary returns the binary, built once per test process with the
// version stamped in the way the Makefile does.
func bridgeBinary(t *testing.T) string {
	t.Helper()
	return testkit.BuildBridge(t, testkit.Build{Version: testVersion, Commit: "feedface"})
}

type result struct {
	code           int
	stdout, stderr string
}

// execBridge runs the binary with exactly the given environment (plus PATH
// and HOME) in a fresh directory and returns its exit code and output.
func execBridge(t *testing.T, env []string, args ...string) result {
	t.Helper()
	cmd := exec.Command(bridgeBinary(t), args...)
	cmd.Dir = t.TempDir()
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + cmd.Dir}, env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		code = exit.ExitCode()
	} else if err != nil {
		t.Fatalf("run bridge %v: %v", args, err)
	}
	return result{code, stdout.String(), stderr.String()}
}

func TestEnvPrintsEveryVariable(t *testing.T) {
	r := execBridge(t, nil, "env")
	if r.code != 0 {
		t.Fatalf("bridge env: exit %d\n%s", r.code, r.stderr)
	}
	for _, v := range config.Vars {
		if !strings.Contains(r.stdout, v.Name) {
			t.Errorf("bridge env lacks %s", v.Name)
		}
	}
	md := execBridge(t, nil, "env", "--markdown")
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatalf("read README.md: %v", err)
	}
	section, err := config.ReadmeSection(string(readme))
	if err != nil {
		t.Fatal(err)
	}
	if md.code != 0 || md.stdout != section {
		t.Fatalf("README.md's table differs from `bridge env --markdown` (exit %d); run `make readme-env`. It should be:\n%s", md.code, md.stdout)
	}
	if r := execBridge(t, nil, "env", "--json"); r.code != 2 {
		t.Fatalf("bridge env --json: exit %d, want 2", r.code)
	}
}

func TestCheckConfigReportsEveryProblemAndExits2(t *testing.T) {
	r := execBridge(t, []string{
		"BRIDGE_HTTP_ADDR=localhost",
		"BRIDGE_MASTER_KEY=too-short-secret-value",
		"BRIDGE_SIGNUP_RATE=lots",
		"BRIDGE_LOG_FORMAT=xml",
	}, "check-config")
	if r.code != 2 {
		t.Fatalf("exit %d, want 2\n%s", r.code, r.stderr)
	}
	for _, want := range []string{
		`BRIDGE_HTTP_ADDR: "localhost" is not host:port (example: 127.0.0.1:8080)`,
		"BRIDGE_MASTER_KEY: is not base64 of exactly 32 bytes",
		`BRIDGE_SIGNUP_RATE: "lots" is not a whole number (example: 30)`,
		`BRIDGE_LOG_FORMAT: "xml" is not one of text, json (example: json)`,
		"DATABASE_URL: is required in node mode",
		"BRIDGE_ADMIN_TOKEN: is required in node mode",
		"BRIDGE_SIGNUP_KEY: is required in node mode unless BRIDGE_SIGNUP_OPEN=true",
		"BRIDGE_XMTP_NODE: is required in node mode",
		"Run `bridge env`",
	} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr lacks %q", want)
		}
	}
	if strings.Contains(r.stderr, "too-short-secret-value") {
		t.Error("stderr shows the master key")
	}
	// `bridge node` refuses the same configuration the same way, before
	// it touches anything.
	node := execBridge(t, []string{"BRIDGE_HTTP_ADDR=localhost"}, "node")
	if node.code != 2 || !strings.Contains(node.stderr, `BRIDGE_HTTP_ADDR: "localhost" is not host:port`) ||
		!strings.Contains(node.stderr, "DATABASE_URL: is required in node mode") {
		t.Errorf("bridge node with a bad config: exit %d\n%s", node.code, node.stderr)
	}
	if t.Failed() {
		t.Logf("stderr:\n%s", r.stderr)
	}
}

func TestCheckConfigAcceptsAGoodConfig(t *testing.T) {
	env := []string{
		"DATABASE_URL=postgres://bridge:pg-password-77@db:5432/bridge",
		"BRIDGE_MASTER_KEY=" + testkit.MasterKey,
		"BRIDGE_ADMIN_TOKEN=admin-token-0123456789",
		"BRIDGE_SIGNUP_KEY=signup-key-0123456789",
		"BRIDGE_XMTP_NODE=xmtp.example.net:5556",
	}
	r := execBridge(t, env, "check-config")
	if r.code != 0 || !strings.Contains(r.stdout, "valid for node mode") {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	for _, secret := range []string{"pg-password-77", testkit.MasterKey[:8], "admin-token-0123456789", "signup-key-0123456789"} {
		if strings.Contains(r.stdout+r.stderr, secret) {
			t.Errorf("check-config printed the secret %q", secret)
		}
	}
	// check-config dev also compares the checkout's key with the dev
	// database; a server that does not answer has nothing to compare, so
	// the result does not depend on a bridge_dev this machine may hold.
	if r := execBridge(t, []string{"DATABASE_URL=postgres://postgres@127.0.0.1:1/none?sslmode=disable"}, "check-config", "dev"); r.code != 0 {
		t.Fatalf("check-config dev with only an unreachable DATABASE_URL: exit %d\n%s", r.code, r.stderr)
	}
	if r := execBridge(t, nil, "check-config", "cluster"); r.code != 2 || !strings.Contains(r.stderr, `unknown mode "cluster"`) {
		t.Fatalf("check-config with an unknown mode: exit %d\n%s", r.code, r.stderr)
	}
}

func TestVersion(t *testing.T) {
	r := execBridge(t, nil, "version")
	if r.code != 0 || !strings.HasPrefix(r.stdout, "bridge "+testVersion+" (commit feedface, go") {
		t.Fatalf("version: exit %d, %q", r.code, r.stdout)
	}
}

func TestUsage(t *testing.T) {
	// Help is asked for: exit 0, on stdout.
	for _, args := range [][]string{{"help"}, {"--help"}, {"-h"}} {
		r := execBridge(t, nil, args...)
		if r.code != 0 || !strings.Contains(r.stdout, "Usage:") {
			t.Errorf("bridge %v: exit %d, want 0 with usage\n%s", args, r.code, r.stderr)
		}
		for _, name := range []string{"node", "dev", "xmtp-node", "migrate", "env", "check-config", "version", "drain", "smoke", "login", "bridges"} {
			if !strings.Contains(r.stdout, "  "+name+" ") {
				t.Errorf("usage lacks %s", name)
			}
		}
	}
	// No command: the usage on stderr, exit 2.
	if r := execBridge(t, nil); r.code != 2 || !strings.Contains(r.stderr, "Available Commands:") {
		t.Errorf("bridge: exit %d, want 2 with usage\n%s", r.code, r.stderr)
	}
	if r := execBridge(t, nil, "frobnicate"); r.code != 2 || !strings.Contains(r.stderr, `unknown command "frobnicate"`) {
		t.Errorf("unknown command: exit %d\n%s", r.code, r.stderr)
	}
}

func TestNodeExits1WhenPostgresIsUnreachable(t *testing.T) {
	addr := testkit.ClosedAddr(t)
	r := execBridge(t, []string{
		"DATABASE_URL=postgres://postgres:pw-not-shown@" + addr + "/bridge?sslmode=disable",
		"BRIDGE_MASTER_KEY=" + testkit.MasterKey,
		"BRIDGE_ADMIN_TOKEN=admin-token-0123456789",
		"BRIDGE_SIGNUP_OPEN=true",
		"BRIDGE_XMTP_NODE=" + testkit.ClosedAddr(t),
	}, "node")
	if r.code != 1 {
		t.Fatalf("exit %d, want 1\n%s", r.code, r.stderr)
	}
	if !strings.Contains(r.stderr, "bridge node: migrate bridge schema in postgres://postgres:xxxxx@"+addr) || !strings.Contains(r.stderr, "connect") {
		t.Fatalf("stderr does not give the reason:\n%s", r.stderr)
	}
	if strings.Contains(r.stderr, "pw-not-shown") {
		t.Fatalf("stderr shows the database password:\n%s", r.stderr)
	}
}

// TestMigrateAppliesBothSchemas runs `bridge migrate` twice on an empty
// database and finds the tables of the bridge and of the local XMTP node.
func TestMigrateAppliesBothSchemas(t *testing.T) {
	url := pgtest.NewDatabase(t, pgtest.Template{Name: "cmd_empty", Migrate: func(context.Context, string) error { return nil }})
	for i := 0; i < 2; i++ {
		if r := execBridge(t, []string{"DATABASE_URL=" + url}, "migrate"); r.code != 0 {
			t.Fatalf("bridge migrate (run %d): exit %d\n%s", i+1, r.code, r.stderr)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var bridgeTables, xmtpTables int
	err = conn.QueryRow(ctx, `SELECT count(*) FILTER (WHERE table_name = 'bridges'), count(*) FILTER (WHERE table_name LIKE 'xmtp\_%')
		FROM information_schema.tables WHERE table_schema = 'public'`).Scan(&bridgeTables, &xmtpTables)
	if err != nil {
		t.Fatal(err)
	}
	if bridgeTables != 1 || xmtpTables == 0 {
		t.Fatalf("after migrate: bridges table %d, xmtp_ tables %d", bridgeTables, xmtpTables)
	}
	if r := execBridge(t, nil, "migrate"); r.code != 2 || !strings.Contains(r.stderr, "DATABASE_URL: is required in migrate mode") {
		t.Fatalf("migrate without DATABASE_URL: exit %d\n%s", r.code, r.stderr)
	}
}

// process is a bridge binary running as a real process, with its stderr
// collected for the test to read.
type process struct {
	t      *testing.T
	cmd    *exec.Cmd
	out    testkit.Buffer
	exited chan error
}

// startProcess starts the binary with exactly env (plus PATH) in a fresh
// directory and kills it when the test ends, if it still runs.
func startProcess(t *testing.T, env []string, args ...string) *process {
	t.Helper()
	p := &process{t: t, cmd: exec.Command(bridgeBinary(t), args...), exited: make(chan error, 1)}
	p.cmd.Dir = t.TempDir()
	p.cmd.Env = append([]string{"PATH=" + os.Getenv("PATH")}, env...)
	p.cmd.Stderr = &p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start bridge %v: %v", args, err)
	}
	go func() { p.exited <- p.cmd.Wait() }()
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			p.cmd.Process.Kill()
		}
	})
	return p
}

// waitLog waits for the JSON log line whose msg is msg and returns its
// string attributes. It fails the test if the process exits first.
func (p *process) waitLog(msg string) map[string]string {
	p.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		for _, line := range strings.Split(p.out.String(), "\n") {
			var rec map[string]any
			if json.Unmarshal([]byte(line), &rec) != nil || rec["msg"] != msg {
				continue
			}
			attrs := map[string]string{}
			for k, v := range rec {
				if s, ok := v.(string); ok {
					attrs[k] = s
				}
			}
			return attrs
		}
		select {
		case err := <-p.exited:
			p.t.Fatalf("bridge exited before logging %q: %v\n%s", msg, err, p.out.String())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("bridge did not log %q within a minute:\n%s", msg, p.out.String())
		}
	}
}

// printed returns the rest of the first output line that starts with prefix.
func (p *process) printed(prefix string) string {
	for _, line := range strings.Split(p.out.String(), "\n") {
		if v, ok := strings.CutPrefix(line, prefix); ok {
			return v
		}
	}
	p.t.Fatalf("bridge did not print %q:\n%s", prefix, p.out.String())
	return ""
}

// terminate sends SIGTERM and expects a clean exit 0.
func (p *process) terminate() {
	p.t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		p.t.Fatal(err)
	}
	select {
	case err := <-p.exited:
		if err != nil {
			p.t.Fatalf("bridge after SIGTERM: %v\n%s", err, p.out.String())
		}
	case <-time.After(30 * time.Second):
		p.t.Fatalf("bridge did not stop within 30s of SIGTERM:\n%s", p.out.String())
	}
}

// TestDevServesAndStopsOnSIGTERM runs `bridge dev` as a real process
// against the real Postgres: it waits for /healthz, checks /readyz, signs
// up with the printed signup key, then sends SIGTERM and expects exit 0.
func TestDevServesAndStopsOnSIGTERM(t *testing.T) {
	url := pgtest.NewDatabase(t, pgtest.Template{Name: "cmd_bridge", Migrate: system.Migrate})
	p := startProcess(t, []string{
		"DATABASE_URL=" + url,
		"BRIDGE_HTTP_ADDR=127.0.0.1:0",
		"BRIDGE_XMTP_NODE_GRPC_ADDR=127.0.0.1:0",
		"BRIDGE_XMTP_NODE_HTTP_ADDR=127.0.0.1:0",
		"BRIDGE_LOG_FORMAT=json",
		"BRIDGE_SHUTDOWN_TIMEOUT=10s",
	}, "dev")
	base := "http://" + p.waitLog("node started")["http_addr"]
	signupKey := p.printed("dev: signup key, kept in .data/dev-signup-key: ")
	adminToken := p.printed("dev: admin token, kept in .data/dev-admin-token: ")

	waitHTTP(t, base+"/healthz", http.StatusOK)
	if code := status(t, base+"/readyz"); code != http.StatusOK {
		t.Fatalf("/readyz: %d\n%s", code, p.out.String())
	}
	body, _ := json.Marshal(map[string]string{"name": "cmd test", "signupKey": signupKey})
	resp, err := http.Post(base+"/v1/accounts", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("signup with the printed key: %d", resp.StatusCode)
	}
	if info, err := os.Stat(filepath.Join(p.cmd.Dir, ".data", "dev-master-key")); err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("dev master key file: %v %v", info, err)
	}

	p.terminate()
	// The secrets were printed once for the operator and never logged.
	for _, line := range strings.Split(p.out.String(), "\n") {
		if strings.HasPrefix(line, "{") && (strings.Contains(line, signupKey) || strings.Contains(line, adminToken)) {
			t.Errorf("a log line shows a secret: %s", line)
		}
	}
	p.waitLog("bridge stopped")
}

func status(t *testing.T, url string) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

func waitHTTP(t *testing.T, url string, want int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == want {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not answer %d within 30s (last error %v)", url, want, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestXMTPNodeServesAndStopsOnSIGTERM runs `bridge xmtp-node` as a real
// process: both of its listeners accept connections, the gateway answers
// a query, the ops endpoints answer, and SIGTERM ends it with exit 0.
func TestXMTPNodeServesAndStopsOnSIGTERM(t *testing.T) {
	url := pgtest.NewDatabase(t, pgtest.Template{Name: "cmd_bridge", Migrate: system.Migrate})
	p := startProcess(t, []string{
		"DATABASE_URL=" + url,
		"BRIDGE_XMTP_NODE_GRPC_ADDR=127.0.0.1:0",
		"BRIDGE_XMTP_NODE_HTTP_ADDR=127.0.0.1:0",
		"BRIDGE_XMTP_NODE_OPS_ADDR=127.0.0.1:0",
		"BRIDGE_LOG_FORMAT=json",
	}, "xmtp-node")
	started := p.waitLog("local xmtp node started")
	opsAddr := p.waitLog("ops endpoints listening")["ops_addr"]

	conn, err := net.Dial("tcp", started["grpc_addr"])
	if err != nil {
		t.Fatalf("dial grpc %s: %v", started["grpc_addr"], err)
	}
	conn.Close()
	resp, err := http.Post("http://"+started["http_addr"]+"/message/v1/query", "application/json",
		strings.NewReader(`{"contentTopics":["/xmtp/0/m-cmdtest/proto"]}`))
	if err != nil {
		t.Fatalf("query through the gateway: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("gateway query: %d %s", resp.StatusCode, body)
	}
	for _, path := range []string{"/healthz", "/readyz", "/metrics"} {
		if code := status(t, "http://"+opsAddr+path); code != http.StatusOK {
			t.Fatalf("xmtp-node %s: %d", path, code)
		}
	}
	p.terminate()
}
