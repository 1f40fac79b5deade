package testkit

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
)

// Build says how BuildBridge builds the bridge binary.
type Build struct {
	// Version and Commit, when set, are stamped in with -ldflags the way
	// the Makefile does (main.version, main.commit).
	Version, Commit string
	// Static builds it the way the Dockerfile does: CGO_ENABLED=0 and
	// -trimpath.
	Static bool
}

var builds struct {
	mu   sync.Mutex
	dir  string // made on first use; RemoveBuilds deletes it
	done map[Build]*built
}

type built struct {
	once sync.Once
	path string
	err  error
}

// BuildBridge returns the bridge binary (./cmd/bridge of this module)
// built as b says, once per test process and Build value, and fails the
// test if it does not build. The binaries live in a temporary directory
// that RemoveBuilds (or Main) deletes.
func BuildBridge(t testing.TB, b Build) string {
	t.Helper()
	builds.mu.Lock()
	if builds.done == nil {
		builds.done = map[Build]*built{}
	}
	e := builds.done[b]
	if e == nil {
		e = &built{}
		builds.done[b] = e
	}
	builds.mu.Unlock()
	e.once.Do(func() { e.path, e.err = build(b) })
	if e.err != nil {
		t.Fatal(e.err)
	}
	return e.path
}

func build(b Build) (string, error) {
	root, err := moduleRoot()
	if err != nil {
		return "", err
	}
	builds.mu.Lock()
	if builds.dir == "" {
		builds.dir, err = os.MkdirTemp("", "bridge-testkit-")
	}
	dir := builds.dir
	builds.mu.Unlock()
	if err != nil {
		return "", fmt.Errorf("build the bridge binary: make temp dir: %w", err)
	}
	sub, err := os.MkdirTemp(dir, "build-")
	if err != nil {
		return "", fmt.Errorf("build the bridge binary: %w", err)
	}
	path := filepath.Join(sub, "bridge")
	args := []string{"build"}
	if b.Static {
		args = append(args, "-trimpath")
	}
	if b.Version != "" || b.Commit != "" {
		args = append(args, "-ldflags", "-X main.version="+b.Version+" -X main.commit="+b.Commit)
	}
	cmd := exec.Command(goTool(), append(args, "-o", path, "./cmd/bridge")...)
	cmd.Dir = root
	if b.Static {
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build the bridge binary (%+v): %w\n%s", b, err, out)
	}
	return path, nil
}

// RemoveBuilds deletes the binaries BuildBridge built. Call it at the end
// of TestMain, after m.Run.
func RemoveBuilds() {
	builds.mu.Lock()
	defer builds.mu.Unlock()
	if builds.dir != "" {
		os.RemoveAll(builds.dir)
	}
}

// Main runs the tests of m, removes what BuildBridge built and exits with
// their code: a package's TestMain when it needs no other set-up.
func Main(m *testing.M) {
	code := m.Run()
	RemoveBuilds()
	os.Exit(code)
}

// goTool is the go command of the toolchain running the tests; go test
// may run from a toolchain that is not on PATH.
func goTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return filepath.Join(runtime.GOROOT(), "bin", "go")
}

// moduleRoot is the directory of the go.mod above the working directory
// (a test runs in its package's directory).
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("find the module root: %w", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("find the module root: no go.mod above the working directory")
		}
		dir = parent
	}
}
