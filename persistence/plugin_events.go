package persistence

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
)

// WatchPlugins listens on PluginChannel on one connection of its own and
// calls changed with the bridge id of each binding change, until ctx ends.
// It calls reset after each (re)connection, before any event, because
// events sent while it was not listening are lost: the caller reloads
// everything then. A lost connection is retried with a backoff of up to
// 30s.
func WatchPlugins(ctx context.Context, databaseURL string, log *slog.Logger, changed func(bridgeID string), reset func()) {
	wait := 500 * time.Millisecond
	for ctx.Err() == nil {
		err := watchOnce(ctx, databaseURL, changed, reset)
		if ctx.Err() != nil {
			return
		}
		log.Warn("plugin events connection lost", "error", err, "retry_in", wait)
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = min(wait*2, 30*time.Second)
	}
}

func watchOnce(ctx context.Context, databaseURL string, changed func(string), reset func()) error {
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	conn, err := pgx.Connect(cctx, databaseURL)
	cancel()
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "LISTEN "+PluginChannel); err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	reset()
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return fmt.Errorf("wait for notification: %w", err)
		}
		changed(n.Payload)
	}
}
