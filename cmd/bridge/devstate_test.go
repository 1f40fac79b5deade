package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// TestDevTwoCheckoutsOnOnePostgres runs `bridge dev` as real processes from
// two checkouts (two .data directories, two master keys) on one Postgres
// database, and again after `make clean-data` (scripts/clean-data.sh):
// each run either works or stops at once with the mismatch message, which
// names the key file and the database and gives the fix, and none prints
// "decrypt sealed value". check-config dev sees the same, and a restart
// keeps the signup key and admin token.
func TestDevTwoCheckoutsOnOnePostgres(t *testing.T) {
	base := os.Getenv("TEST_DATABASE_URL")
	if base == "" {
		base = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
	}
	var suffix [4]byte
	rand.Read(suffix[:])
	name := "bridge_twocheckouts_" + hex.EncodeToString(suffix[:])
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + name
	dbURL := u.String()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if conn, err := pgx.Connect(ctx, base); err == nil {
			conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)")
			conn.Close(ctx)
		}
	})
	env := []string{"DATABASE_URL=" + dbURL, "BRIDGE_HTTP_ADDR=127.0.0.1:0", "BRIDGE_XMTP_NODE_GRPC_ADDR=127.0.0.1:0",
		"BRIDGE_XMTP_NODE_HTTP_ADDR=127.0.0.1:0", "BRIDGE_LOG_FORMAT=json", "BRIDGE_SHUTDOWN_TIMEOUT=10s", "BRIDGE_CANARY_INTERVAL=0"}
	checkoutA, checkoutB := t.TempDir(), t.TempDir()

	works := func(dir string) *process {
		t.Helper()
		p := startProcessIn(t, dir, env, "dev")
		p.waitLog("node started")
		p.terminate()
		noDecryptError(t, p.out.String())
		return p
	}
	mismatch := func(dir string) {
		t.Helper()
		p := startProcessIn(t, dir, env, "dev")
		select {
		case err := <-p.exited:
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != exitFailure {
				t.Fatalf("dev with another checkout's database: %v, want exit 1\n%s", err, p.out.String())
			}
		case <-time.After(2 * time.Minute):
			t.Fatalf("dev with another checkout's database did not stop\n%s", p.out.String())
		}
		expectMismatch(t, p.out.String(), name)
	}

	// Checkout A makes the database (dev creates the missing one named by
	// DATABASE_URL) and keeps its secrets across a restart.
	first := works(checkoutA)
	shortLogLines(t, first.out.String())
	key := first.printed("dev: signup key, kept in .data/dev-signup-key: ")
	if again := works(checkoutA); again.printed("dev: signup key, kept in .data/dev-signup-key: ") != key {
		t.Fatal("a restart printed another signup key")
	}
	// Checkout B has its own key: it stops with the mismatch, and so
	// does check-config dev, while A's check passes.
	mismatch(checkoutB)
	if out, code := runIn(t, checkoutB, env, "check-config", "dev"); code != exitUsage {
		t.Fatalf("check-config dev in checkout B: exit %d, want 2\n%s", code, out)
	} else {
		expectMismatch(t, out, name)
	}
	if out, code := runIn(t, checkoutA, env, "check-config", "dev"); code != exitOK {
		t.Fatalf("check-config dev in checkout A: exit %d, want 0\n%s", code, out)
	}

	// A's clean-data drops the database A's dev created and its .data:
	// then B works, and A, with a new key, is the one told.
	script, err := filepath.Abs("../../scripts/clean-data.sh")
	if err != nil {
		t.Fatal(err)
	}
	clean := exec.Command(script)
	clean.Dir = checkoutA
	clean.Env = append([]string{"PATH=" + os.Getenv("PATH")}, env...)
	if out, err := clean.CombinedOutput(); err != nil || !strings.Contains(string(out), "dropped the database "+name) {
		t.Fatalf("clean-data: %v\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join(checkoutA, ".data")); !os.IsNotExist(err) {
		t.Fatalf("clean-data left .data: %v", err)
	}
	works(checkoutB)
	mismatch(checkoutA)
}

func expectMismatch(t *testing.T, out, database string) {
	t.Helper()
	noDecryptError(t, out)
	for _, want := range []string{"the master key in .data/dev-master-key does not match the database " + database,
		"Fix, keeping both:", "Fix, starting over:", "DATABASE_URL='"} {
		if !strings.Contains(out, want) {
			t.Fatalf("the mismatch message lacks %q:\n%s", want, out)
		}
	}
}

// shortLogLines checks that every JSON log line is short, names each
// attribute once, and that a normal stop logs nothing of protoactor's
// health server.
func shortLogLines(t *testing.T, out string) {
	t.Helper()
	for _, line := range strings.Split(out, "\n") {
		if !strings.HasPrefix(line, "{") {
			continue
		}
		if len(line) > 600 {
			t.Errorf("a log line of %d characters: %s", len(line), line)
		}
		if strings.Count(line, `"node":`) > 1 {
			t.Errorf("a log line repeats node: %s", line)
		}
		if strings.Contains(line, "Automanaged server stopping") {
			t.Errorf("the normal stop of protoactor's health server is logged: %s", line)
		}
	}
	if !strings.Contains(out, `"msg":"starting bridge"`) {
		t.Fatalf("no starting line:\n%s", out)
	}
}

func noDecryptError(t *testing.T, out string) {
	t.Helper()
	if strings.Contains(out, "decrypt sealed value") {
		t.Fatalf("the output shows a decrypt error:\n%s", out)
	}
}

// startProcessIn is startProcess in the directory dir, as a checkout.
func startProcessIn(t *testing.T, dir string, env []string, args ...string) *process {
	t.Helper()
	p := &process{t: t, cmd: exec.Command(bridgeBinary(t), args...), exited: make(chan error, 1)}
	p.cmd.Dir = dir
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

// runIn runs the binary to its end in dir and returns its output and exit
// code.
func runIn(t *testing.T, dir string, env []string, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(bridgeBinary(t), args...)
	cmd.Dir = dir
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH")}, env...)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return string(out), ee.ExitCode()
	}
	if err != nil {
		t.Fatal(err)
	}
	return string(out), 0
}
