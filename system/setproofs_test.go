package system

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/xmtpbridge/bridge/internal/testkit"
	"github.com/xmtpbridge/bridge/system/config"
	"github.com/xmtpbridge/bridge/xmtp/api"
)

// TestXMTPSetProofsSwitch: the runtime's XMTP subscription publishes set
// proofs by default, and has no proof publisher with
// BRIDGE_XMTP_SET_PROOFS=false.
func TestXMTPSetProofsSwitch(t *testing.T) {
	for _, v := range []string{"", "false", "true"} {
		env := map[string]string{}
		if v != "" {
			env[config.EnvXMTPSetProofs] = v
		}
		cfg, err := config.Load(func(k string) (string, bool) { s, ok := env[k]; return s, ok }, config.WithMode(config.ModeDev))
		if err != nil {
			t.Fatal(err)
		}
		opts, err := xmtpClientOptions(cfg, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		ctx := testkit.Context(t, 10*time.Second)
		c, err := api.Dial(ctx, "127.0.0.1:1", opts...)
		if err != nil {
			t.Fatal(err)
		}
		sub := c.Subscribe(context.Background())
		if want := v != "false"; sub.Proving() != want {
			t.Errorf("%s=%q: proving %v, want %v", config.EnvXMTPSetProofs, v, sub.Proving(), want)
		}
		sub.Close()
		_ = c.Close()
	}
}
