package testkit

import (
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/xmtpbridge/bridge/internal/freeport"
)

// Etcd is a single-member etcd process of one test, on free loopback
// ports with a data directory of its own.
type Etcd struct {
	// Endpoint is the host:port of its client URL.
	Endpoint string
	cmd      *exec.Cmd
	logs     *Buffer
	done     chan struct{}
}

// StartEtcd starts Debian's etcd as member name, waits until its /health
// says it is healthy, and kills it when the test ends (showing its output
// if the test failed). It fails the test naming the package when etcd is
// not installed.
func StartEtcd(t testing.TB, name string) *Etcd {
	t.Helper()
	bin, err := exec.LookPath("etcd")
	if err != nil {
		if _, serr := os.Stat("/usr/bin/etcd"); serr != nil {
			t.Fatalf("etcd is not installed: run scripts/ensure-tools.sh etcd (it installs Debian's etcd-server; make test runs it)")
		}
		bin = "/usr/bin/etcd"
	}
	client, peer := freeport.Addr(t), freeport.Addr(t)
	dir := t.TempDir()
	cmd := exec.Command(bin,
		"--name", name,
		"--data-dir", filepath.Join(dir, "data"),
		"--listen-client-urls", "http://"+client,
		"--advertise-client-urls", "http://"+client,
		"--listen-peer-urls", "http://"+peer,
		"--initial-advertise-peer-urls", "http://"+peer,
		"--initial-cluster", name+"=http://"+peer,
		"--initial-cluster-state", "new",
		"--logger", "zap", "--log-level", "warn",
	)
	cmd.Dir = dir
	// Only PATH and HOME: an ETCD_* variable of the caller must not change
	// the test's server.
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	e := &Etcd{Endpoint: client, cmd: cmd, logs: &Buffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = e.logs, e.logs
	if err := cmd.Start(); err != nil {
		t.Fatalf("start etcd: %v", err)
	}
	go func() { _ = cmd.Wait(); close(e.done) }()
	t.Cleanup(func() {
		select {
		case <-e.done:
		default:
			_ = cmd.Process.Kill()
			<-e.done
		}
		if t.Failed() {
			t.Logf("--- etcd output (last 3000 bytes) ---\n%s", Tail(e.logs.String(), 3000))
		}
	})
	hc := http.Client{Timeout: 2 * time.Second}
	WaitFor(t, 30*time.Second, func() bool {
		select {
		case <-e.done:
			t.Fatalf("etcd exited while starting:\n%s", Tail(e.logs.String(), 3000))
		default:
		}
		resp, err := hc.Get("http://" + client + "/health")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		var h struct {
			Health string `json:"health"`
		}
		return resp.StatusCode == http.StatusOK && json.NewDecoder(resp.Body).Decode(&h) == nil && h.Health == "true"
	}, "etcd /health on %s", client)
	return e
}

// Signal sends sig to the etcd process (SIGSTOP and SIGCONT pause and
// resume it).
func (e *Etcd) Signal(sig os.Signal) error { return e.cmd.Process.Signal(sig) }
