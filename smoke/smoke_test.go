package smoke

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	nethttp "net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/xmtpbridge/bridge/internal/testkit"
	"github.com/xmtpbridge/bridge/persistence/pgtest"
	"github.com/xmtpbridge/bridge/system"
	"github.com/xmtpbridge/bridge/system/config"
)

func TestMain(m *testing.M) { testkit.Main(m) }

var template = pgtest.Template{Name: "smoke", Migrate: system.Migrate}

const (
	testAdmin  = "adm_smoke_admin_token_0123456789"
	testSignup = "sk_smoke_signup_key_0123456789"
)

// deployment is a running bridge node: the API, the in-process local XMTP
// node, the actor runtime, on a fresh database.
type deployment struct {
	db   string
	api  string // base URL
	xmtp string // gRPC host:port
}

// startDeployment starts a dev-mode node on loopback ports chosen by the
// kernel, with the canary prober off (the smoke check brings its own
// traffic).
func startDeployment(t *testing.T) *deployment {
	t.Helper()
	db := pgtest.NewDatabase(t, template)
	env := map[string]string{
		config.EnvDatabaseURL:      db,
		config.EnvDataDir:          t.TempDir(), // the plug-ins' compiled modules
		config.EnvHTTPAddr:         "127.0.0.1:0",
		config.EnvXMTPNodeGRPCAddr: "127.0.0.1:0",
		config.EnvXMTPNodeHTTPAddr: "127.0.0.1:0",
		config.EnvMasterKey:        testkit.MasterKey,
		config.EnvAdminToken:       testAdmin,
		config.EnvSignupKey:        testSignup,
		config.EnvShutdownTimeout:  "10s",
		config.EnvCanaryInterval:   "0",
		config.EnvSweepInterval:    "1s",
	}
	cfg, err := config.Load(func(k string) (string, bool) { v, ok := env[k]; return v, ok }, config.WithMode(config.ModeDev))
	if err != nil {
		t.Fatalf("load config: %v", err)
	}
	n, err := system.New(system.Options{Config: cfg, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Version: "test"})
	if err != nil {
		t.Fatalf("new node: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := n.Start(ctx); err != nil {
		t.Fatalf("start node: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := n.Stop(ctx); err != nil {
			t.Errorf("stop node: %v", err)
		}
	})
	return &deployment{db: db, api: "http://" + n.HTTPAddr(), xmtp: n.XMTPAddr()}
}

// query runs one query on the deployment's database and returns the
// first column of the single row.
func (d *deployment) count(t *testing.T, sql string, args ...any) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, d.db)
	if err != nil {
		t.Fatalf("connect to the test database: %v", err)
	}
	defer conn.Close(ctx)
	var n int
	if err := conn.QueryRow(ctx, sql, args...).Scan(&n); err != nil {
		t.Fatalf("query %q: %v", sql, err)
	}
	return n
}

// run runs the check as a function and returns its report and output.
func run(t *testing.T, cfg Config) (*Report, string) {
	t.Helper()
	var out bytes.Buffer
	cfg.Out = &out
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	r, err := Run(ctx, cfg)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	t.Logf("output:\n%s", out.String())
	return r, out.String()
}

// wantSteps checks each step's outcome: "ok", "FAIL" or "skip".
func wantSteps(t *testing.T, r *Report, out string, want map[string]string) {
	t.Helper()
	if len(r.Steps) != 5 {
		t.Fatalf("report has %d steps, want 5: %+v", len(r.Steps), r.Steps)
	}
	for _, s := range r.Steps {
		got := "ok"
		switch {
		case s.Skipped:
			got = "skip"
		case !s.OK:
			got = "FAIL"
		}
		if got != want[s.Step] {
			t.Errorf("step %s: %s (%v), want %s", s.Step, got, s.Err, want[s.Step])
		}
		// One line per step: name, status, duration.
		if !lineWith(out, s.Step, got) {
			t.Errorf("output has no line %q … %q", s.Step, got)
		}
	}
}

func lineWith(out, step, status string) bool {
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) >= 3 && f[0] == step && f[1] == status {
			if _, err := time.ParseDuration(f[2]); err == nil {
				return true
			}
		}
	}
	return false
}

// assertCleanedUp checks in the database that the check left no bridge and
// no usable API key behind.
func assertCleanedUp(t *testing.T, d *deployment) {
	t.Helper()
	if n := d.count(t, `SELECT count(*) FROM bridges b JOIN accounts a ON a.id = b.account_id WHERE a.name LIKE 'smoke %'`); n != 0 {
		t.Errorf("%d smoke bridges are left in the database", n)
	}
	if n := d.count(t, `SELECT count(*) FROM api_keys k JOIN accounts a ON a.id = k.account_id WHERE a.name LIKE 'smoke %' AND k.revoked_at IS NULL`); n != 0 {
		t.Errorf("%d smoke API keys are still usable", n)
	}
	if n := d.count(t, `SELECT count(*) FROM accounts WHERE name LIKE 'smoke %'`); n == 0 {
		t.Errorf("no smoke account was created at all")
	}
}

// TestSmoke runs the check against one real node: the full pass, a wrong
// target, a wrong signup key and a broken forward path, as a function and
// as the built binary.
func TestSmoke(t *testing.T) {
	d := startDeployment(t)

	t.Run("pass", func(t *testing.T) {
		r, out := run(t, Config{Target: d.api + "/", SignupKey: testSignup, XMTP: d.xmtp, Timeout: 45 * time.Second})
		wantSteps(t, r, out, map[string]string{StepHealth: "ok", StepSignup: "ok", StepBridge: "ok", StepCanary: "ok", StepCleanup: "ok"})
		if !r.OK() || !strings.Contains(out, "PASS: every step passed") {
			t.Fatalf("the check failed against a healthy node")
		}
		if c := r.Step(StepCanary); !strings.Contains(c.Detail, "Hello from the proxied server! Your message was: "+CanaryPrefix) {
			t.Errorf("canary detail %q does not show the /canary answer", c.Detail)
		}
		if strings.Contains(out, testSignup) || strings.Contains(out, "xbk_") {
			t.Errorf("the output shows a secret:\n%s", out)
		}
		if c := r.Step(StepCleanup); !strings.Contains(c.Detail, "cannot delete accounts") {
			t.Errorf("cleanup does not say that the account stays: %q", c.Detail)
		}
		assertCleanedUp(t, d)
	})

	t.Run("closed port fails at health", func(t *testing.T) {
		r, out := run(t, Config{Target: "http://" + testkit.ClosedAddr(t), SignupKey: testSignup, XMTP: d.xmtp, Timeout: 20 * time.Second})
		wantSteps(t, r, out, map[string]string{StepHealth: "FAIL", StepSignup: "skip", StepBridge: "skip", StepCanary: "skip", StepCleanup: "ok"})
		if f := r.Failed(); f == nil || f.Step != StepHealth || !strings.Contains(f.Err.Error(), "GET /healthz") {
			t.Fatalf("first failure: %+v", f)
		}
		if !strings.Contains(out, "FAIL: step health:") {
			t.Errorf("the output does not name the failing step")
		}
	})

	t.Run("wrong signup key fails at signup", func(t *testing.T) {
		accounts := d.count(t, `SELECT count(*) FROM accounts`)
		r, out := run(t, Config{Target: d.api, SignupKey: "sk_not_the_key_0123456789", XMTP: d.xmtp, Timeout: 20 * time.Second})
		wantSteps(t, r, out, map[string]string{StepHealth: "ok", StepSignup: "FAIL", StepBridge: "skip", StepCanary: "skip", StepCleanup: "ok"})
		f := r.Failed()
		var serr *statusError
		if f == nil || f.Step != StepSignup || !errors.As(f.Err, &serr) || serr.Status != nethttp.StatusUnauthorized {
			t.Fatalf("first failure: %+v", f)
		}
		if !strings.Contains(f.Err.Error(), "signup key was refused") || strings.Contains(out, "sk_not_the_key") {
			t.Errorf("signup failure %q should explain without echoing the key", f.Err)
		}
		if n := d.count(t, `SELECT count(*) FROM accounts`); n != accounts {
			t.Errorf("a refused signup created an account (%d -> %d)", accounts, n)
		}
	})

	t.Run("broken forward path fails at canary and cleans up", func(t *testing.T) {
		// The deployment is reached through a real reverse proxy that
		// passes the API but refuses the canary endpoint, as a broken
		// ingress would: the bridge's forward requests fail, so no reply
		// comes back.
		node, _ := url.Parse(d.api)
		proxy := httputil.NewSingleHostReverseProxy(node)
		var refused atomic.Int64
		front := httptest.NewServer(nethttp.HandlerFunc(func(w nethttp.ResponseWriter, r *nethttp.Request) {
			if r.URL.Path == "/canary" {
				refused.Add(1)
				nethttp.Error(w, "upstream unavailable", nethttp.StatusBadGateway)
				return
			}
			proxy.ServeHTTP(w, r)
		}))
		defer front.Close()

		bridgesBefore := d.count(t, `SELECT count(*) FROM bridges`)
		r, out := run(t, Config{Target: front.URL, SignupKey: testSignup, XMTP: d.xmtp, Timeout: 8 * time.Second})
		wantSteps(t, r, out, map[string]string{StepHealth: "ok", StepSignup: "ok", StepBridge: "ok", StepCanary: "FAIL", StepCleanup: "ok"})
		if f := r.Failed(); f == nil || f.Step != StepCanary || !strings.Contains(f.Err.Error(), "no reply from bridge") {
			t.Fatalf("first failure: %+v", f)
		}
		if refused.Load() == 0 {
			t.Errorf("the bridge never called its forward target, so the failure is not the forward path's")
		}
		if n := d.count(t, `SELECT count(*) FROM bridges`); n != bridgesBefore {
			t.Errorf("bridges: %d before the check, %d after", bridgesBefore, n)
		}
		assertCleanedUp(t, d)
	})

	t.Run("binary", func(t *testing.T) {
		bin := testkit.BuildBridge(t, testkit.Build{})
		env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"), "BRIDGE_SMOKE_SIGNUP_KEY=" + testSignup, "BRIDGE_SMOKE_XMTP=" + d.xmtp}

		code, out, errOut := execBridge(t, bin, env, "smoke", "--target="+d.api, "--timeout=45s")
		if code != 0 {
			t.Fatalf("smoke against a healthy node: exit %d\n%s\n%s", code, out, errOut)
		}
		for _, step := range []string{StepHealth, StepSignup, StepBridge, StepCanary, StepCleanup} {
			if !lineWith(out, step, "ok") {
				t.Errorf("no ok line for %s:\n%s", step, out)
			}
		}

		code, out, errOut = execBridge(t, bin, env, "smoke", "--target=http://"+testkit.ClosedAddr(t), "--timeout=20s")
		if code != 1 || !lineWith(out, StepHealth, "FAIL") || !strings.Contains(errOut, "step health failed") {
			t.Fatalf("smoke against a closed port: exit %d, want 1\n%s\n%s", code, out, errOut)
		}

		// Bad usage is exit 2 and runs nothing.
		noXMTP := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
		for _, args := range [][]string{
			{"smoke", "--target=" + d.api},                          // no XMTP node
			{"smoke", "--xmtp=" + d.xmtp},                           // no target
			{"smoke", "--target=ftp://x", "--xmtp=" + d.xmtp},       // not http
			{"smoke", "--target=" + d.api, "--xmtp=" + d.xmtp, "x"}, // stray argument
			{"smoke", "--target=" + d.api, "--xmtp=" + d.xmtp, "-timeout=0s"},
		} {
			code, out, errOut := execBridge(t, bin, noXMTP, args...)
			if code != 2 || out != "" || errOut == "" {
				t.Errorf("%q: exit %d, want 2 with a message and no steps\nstdout: %s\nstderr: %s", args, code, out, errOut)
			}
		}
		assertCleanedUp(t, d)
	})
}

// execBridge runs the binary with a bounded wait and returns its exit
// code, stdout and stderr.
func execBridge(t *testing.T, bin string, env []string, args ...string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = env
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return 0, out.String(), errOut.String()
	case errors.As(err, &exit):
		return exit.ExitCode(), out.String(), errOut.String()
	default:
		t.Fatalf("run %q: %v", args, err)
		return -1, "", ""
	}
}
