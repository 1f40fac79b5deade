package actors

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/xmtpbridge/bridge/persistence"
)

// reconcileLoop keeps every active bridge activated and stops identities
// whose bridge was disabled or deleted. It is the one-node form of the
// cluster's placement reconciler.
func (rt *Runtime) reconcileLoop() {
	defer close(rt.reconcileDone)
	t := time.NewTicker(rt.cfg.ReconcileInterval)
	defer t.Stop()
	for {
		select {
		case <-rt.stopReconcile:
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(context.Background(), rt.cfg.ReconcileInterval)
			if err := rt.reconcile(ctx); err != nil {
				rt.log.Warn("reconcile identities", "error", err)
			}
			cancel()
		}
	}
}

// waitForMember waits until the cluster topology holds a member, so
// requests to grains can be placed. It listens to the event stream rather
// than reading the member list, which protoactor does not guard.
func (rt *Runtime) waitForMember(ctx context.Context, joined <-chan struct{}) error {
	select {
	case <-joined:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("wait for cluster membership: %w", ctx.Err())
	}
}

// reconcile activates every bridge of the store that should be online
// (status active or endpoint_gone) and is not hosted, and stops hosted
// identities whose bridge is disabled or gone from the store.
func (rt *Runtime) reconcile(ctx context.Context) error {
	page := persistence.Page{Limit: persistence.MaxPageSize}
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	want := map[string]bool{}
	for {
		bs, next, err := rt.cfg.Store.ListAllBridges(ctx, page)
		if err != nil {
			return fmt.Errorf("list bridges: %w", err)
		}
		for _, b := range bs {
			if b.Status == persistence.StatusDisabled {
				continue
			}
			want[b.ID] = true
			if _, ok := rt.Status(b.ID); ok || rt.isStopping() {
				continue
			}
			wg.Add(1)
			sem <- struct{}{}
			go func(id string) {
				defer wg.Done()
				defer func() { <-sem }()
				if err := rt.Activate(ctx, id); err != nil {
					rt.log.Warn("activate bridge", "bridge", id, "error", err)
				}
			}(b.ID)
		}
		if next == "" {
			break
		}
		page.After = next
	}
	wg.Wait()
	for _, id := range rt.Hosted() {
		if !want[id] {
			if err := rt.Deactivate(ctx, id); err != nil {
				rt.log.Warn("deactivate bridge", "bridge", id, "error", err)
			}
		}
	}
	return nil
}
