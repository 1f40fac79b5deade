package system

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/xmtpbridge/bridge/persistence"
	"github.com/xmtpbridge/bridge/persistence/pgtest"
	"github.com/xmtpbridge/bridge/system/config"
)

// TestAPIStopsRightAfterItStarts: a stop that comes just after the HTTP
// API started (a SIGTERM at start-up) ends its serve loop at once. The
// server's Shutdown can come before the serve loop has taken the
// listener, and the loop then served it for ever: the node's stop waited
// out its whole timeout and exited non-zero.
func TestAPIStopsRightAfterItStarts(t *testing.T) {
	t.Parallel()
	url := pgtest.NewDatabase(t, template)
	cfg := loadConfig(t, config.ModeDev, config.EnvDatabaseURL, url)
	ctx := context.Background()
	sealer, err := persistence.NewSealer(persistence.MasterKey{ID: cfg.MasterKey.ID, Key: cfg.MasterKey.Key})
	if err != nil {
		t.Fatal(err)
	}
	store, err := persistence.Open(ctx, url, sealer)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(store.Close)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	for i := 0; i < 20; i++ {
		ln, err := listenAPI(cfg)
		if err != nil {
			t.Fatal(err)
		}
		failures := make(chan error, 1)
		a, err := startAPI(cfg, log, prometheus.NewRegistry(), store, ln, nil, func(context.Context) error { return nil }, failures)
		if err != nil {
			t.Fatal(err)
		}
		sctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		err = a.shutdown(sctx)
		cancel()
		if err != nil {
			t.Fatalf("start %d: stop right after the start: %v", i, err)
		}
		select {
		case err := <-failures:
			t.Fatalf("start %d: a stopped API reported a failure: %v", i, err)
		default:
		}
	}
}
