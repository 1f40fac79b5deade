package node

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// TestPoolSize: the node's Postgres pool opens up to MaxConns connections,
// 16 by default (pgx's own default is four on a machine of two cores),
// and no more.
func TestPoolSize(t *testing.T) {
	db := testDatabase(t)
	for _, tc := range []struct {
		name string
		cfg  Config
		want int
	}{
		{"default", Config{}, DefaultMaxConns},
		{"configured", Config{MaxConns: 3}, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := startNode(t, db, tc.cfg, nil)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			// want connections at once, each in use and open in Postgres.
			var held []*pgxpool.Conn
			defer func() {
				for _, c := range held {
					c.Release()
				}
			}()
			for range tc.want {
				c, err := n.store.pool.Acquire(ctx)
				if err != nil {
					t.Fatalf("acquire connection %d of %d: %v", len(held)+1, tc.want, err)
				}
				if err := c.Ping(ctx); err != nil {
					t.Fatal(err)
				}
				held = append(held, c)
			}
			// One more waits.
			short, cancelShort := context.WithTimeout(ctx, 200*time.Millisecond)
			defer cancelShort()
			if c, err := n.store.pool.Acquire(short); err == nil {
				c.Release()
				t.Fatalf("acquired connection %d of a pool of %d", tc.want+1, tc.want)
			} else if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("acquire past the cap: %v, want a wait cut by the deadline", err)
			}
		})
	}
}
