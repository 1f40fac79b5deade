package system

import (
	"bytes"
	"errors"
	"log/slog"
	nethttp "net/http"
	"strings"
	"testing"
)

func TestProtoactorLoggerLowersOnlyTheExpectedStop(t *testing.T) {
	var buf bytes.Buffer
	debug := &slog.HandlerOptions{Level: slog.LevelDebug}
	log := slog.New(levelFloor{h: expectedStops{h: slog.NewTextHandler(&buf, debug)}, min: slog.LevelWarn}).With("component", "protoactor")

	log.Error(automanagedStopping, slog.Any("error", nethttp.ErrServerClosed))
	log.Error(automanagedStopping, slog.Any("error", errors.New("listen tcp :7000: bind: address already in use")))
	log.Info("chatty detail")

	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("want 2 lines (the stop at DEBUG, the failure at ERROR), got %d:\n%s", len(lines), buf.String())
	}
	if !strings.Contains(lines[0], "level=DEBUG") || !strings.Contains(lines[0], "Server closed") {
		t.Errorf("normal stop not lowered to DEBUG: %s", lines[0])
	}
	if !strings.Contains(lines[1], "level=ERROR") || !strings.Contains(lines[1], "address already in use") {
		t.Errorf("a real failure of the health server must stay an ERROR: %s", lines[1])
	}
	if !strings.Contains(lines[0], "component=protoactor") {
		t.Errorf("attributes lost when re-levelling: %s", lines[0])
	}
}

// TestProtoactorNormalStopIsQuietAtInfo checks that at the usual info level
// a normal stop of the automanaged provider writes nothing at all.
func TestProtoactorNormalStopIsQuietAtInfo(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(levelFloor{h: expectedStops{h: slog.NewTextHandler(&buf, nil)}, min: slog.LevelWarn}).With("component", "protoactor")
	log.Error(automanagedStopping, slog.Any("error", nethttp.ErrServerClosed))
	if buf.Len() != 0 {
		t.Fatalf("a normal stop was logged at info level: %s", buf.String())
	}
}
