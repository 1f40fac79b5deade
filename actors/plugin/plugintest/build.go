// Package plugintest compiles the test plug-ins under
// actors/plugin/testdata/guests from Go source, with
// GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared, for the tests of
// every package that needs a real Extism plug-in.
//
// A build is cached twice: once per test process, and on disk under the
// system's temporary directory, keyed by the SHA-256 of the guest sources,
// the Go version and the linker flags, so that the packages of one test
// run share one build of each plug-in.
package plugintest

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"sync"
	"testing"
)

// The guests under testdata/guests.
const (
	// Bot is the well-behaved plug-in; its "mode" config picks its
	// on_message behaviour, and it exports on_response and on_send.
	Bot = "bot"
	// Hostile misbehaves in the way its "mode" config names.
	Hostile = "hostile"
	// Floor is the benchmarks' probe: each export does one part of the
	// bot's on_message (nothing, read the input, answer, the JSON work).
	Floor = "floor"
	// NoExport exports no extension point.
	NoExport = "noexport"
)

var (
	mu    sync.Mutex
	built = map[string][]byte{}
)

// GuestsDir is the directory of the guest module.
func GuestsDir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "testdata", "guests")
}

// Build returns the Wasm bytes of guest, built with the given -ldflags
// ("" for none). It fails the test when the build fails.
func Build(t testing.TB, guest, ldflags string) []byte {
	t.Helper()
	b, err := build(guest, ldflags)
	if err != nil {
		t.Fatalf("build plug-in %s: %v", guest, err)
	}
	return b
}

func build(guest, ldflags string) ([]byte, error) {
	mu.Lock()
	defer mu.Unlock()
	key, err := sourceKey(guest, ldflags)
	if err != nil {
		return nil, err
	}
	if b, ok := built[key]; ok {
		return b, nil
	}
	dir := filepath.Join(os.TempDir(), "xmtpbridge-test-plugins")
	out := filepath.Join(dir, guest+"-"+key[:16]+".wasm")
	if b, err := os.ReadFile(out); err == nil && len(b) > 8 {
		built[key] = b
		return b, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	tmp := out + fmt.Sprintf(".%d.tmp", os.Getpid())
	args := []string{"build", "-buildmode=c-shared", "-trimpath", "-o", tmp}
	if ldflags != "" {
		args = append(args, "-ldflags", ldflags)
	}
	cmd := exec.Command(goTool(), append(args, "./"+guest)...)
	cmd.Dir = GuestsDir()
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm", "GOWORK=off", "GOFLAGS=-mod=mod -buildvcs=false")
	if msg, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("go build: %w: %s", err, msg)
	}
	if err := os.Rename(tmp, out); err != nil {
		return nil, err
	}
	b, err := os.ReadFile(out)
	if err != nil {
		return nil, err
	}
	built[key] = b
	return b, nil
}

// goTool is the go command of the running toolchain.
func goTool() string {
	if p := filepath.Join(runtime.GOROOT(), "bin", "go"); fileExists(p) {
		return p
	}
	return "go"
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// sourceKey hashes what a build depends on.
func sourceKey(guest, ldflags string) (string, error) {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00%s\x00", runtime.Version(), guest, ldflags)
	root := GuestsDir()
	var files []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && (filepath.Ext(p) == ".go" || d.Name() == "go.mod") {
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("hash guest sources: %w", err)
	}
	sort.Strings(files)
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return "", err
		}
		rel, _ := filepath.Rel(root, f)
		fmt.Fprintf(h, "%s\x00%d\x00", rel, len(b))
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
