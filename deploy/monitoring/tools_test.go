package monitoring

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Paths of the files under test, relative to this package.
var (
	prometheusDir    = filepath.Join("..", "prometheus")
	prometheusConfig = filepath.Join(prometheusDir, "prometheus.yml")
	alertsFile       = filepath.Join(prometheusDir, "alerts.yml")
	alertsTestFile   = filepath.Join(prometheusDir, "alerts_test.yml")
	alertmanagerFile = filepath.Join(prometheusDir, "alertmanager.yml")
	dashboardFile    = filepath.Join("..", "grafana", "bridge.json")
)

// tool returns the path of an outside program the tests need, or fails the
// test naming the Debian package that provides it.
func tool(t testing.TB, name string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	t.Fatalf("%s is missing: install Debian's prometheus package (scripts/ensure-tools.sh promtool prometheus, or apt-get install prometheus)", name)
	return ""
}

// run runs a program to its end within a bounded time and returns its
// combined output and error.
func run(t testing.TB, timeout time.Duration, dir string, name string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("%s %v did not finish within %s:\n%s", filepath.Base(name), args, timeout, out.String())
	}
	return out.String(), err
}

// runInput runs a program with input on its standard input and returns
// its combined output and error.
func runInput(t testing.TB, input string, name string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdin = strings.NewReader(input)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("%s %v did not finish within a minute:\n%s", filepath.Base(name), args, out.String())
	}
	return out.String(), err
}

// readFile reads a file of the repository or fails the test.
func readFile(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	return string(b)
}
