package system

import (
	"fmt"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/xmtpbridge/bridge/actors"
	bridgehttp "github.com/xmtpbridge/bridge/http"
	"github.com/xmtpbridge/bridge/persistence"
	"github.com/xmtpbridge/bridge/system/config"
)

// liveHub adapts the node's actors.LiveHub to the HTTP front.
type liveHub struct{ hub *actors.LiveHub }

var _ bridgehttp.LiveHub = liveHub{}

func (l liveHub) OpenLive(bridgeID, keyID string, after int64, window int) bridgehttp.LiveStream {
	return l.hub.Open(bridgeID, keyID, after, window)
}

func (l liveHub) LiveClosed(reason string) { l.hub.Closed(reason) }

// startLive builds and starts the node's live hub: one Postgres listener
// and one timer for all the node's live consumers. nudge wakes a bridge's
// grain to publish the replies of its consumers.
func startLive(cfg *config.Config, log *slog.Logger, reg prometheus.Registerer, store *persistence.Store,
	nudge func(bridgeID string)) (*actors.LiveHub, error) {
	hub, err := actors.NewLiveHub(actors.LiveConfig{
		Store: store, NodeID: cfg.NodeID, Registerer: reg, Logger: log.With("component", "live"),
		Window: cfg.LiveWindow, ClaimTTL: cfg.LiveClaimTTL, Nudge: nudge,
	})
	if err != nil {
		return nil, fmt.Errorf("start live hub: %w", err)
	}
	hub.Start()
	return hub, nil
}
