package plugin

import (
	"context"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/xmtpbridge/bridge/persistence"
)

// The defaults of Config.
const (
	DefaultKeepResident = 5 * time.Second
	DefaultRefetchAfter = time.Minute
	DefaultMaxMemory    = 16 << 20
	DefaultTimeout      = 100 * time.Millisecond
	DefaultMaxOutput    = 1 << 20
)

// Source is where a Host reads bindings and plug-in bytes: the Postgres
// store. It is never called per message: bindings are loaded at start and
// on change events, bytes when a binding's pool is compiled, ETags every
// RefetchAfter off the call path.
type Source interface {
	PluginBindings(ctx context.Context, bridgeID string) ([]persistence.PluginBinding, error)
	PluginCode(ctx context.Context, pluginID string) (persistence.PluginCode, error)
	PluginETag(ctx context.Context, pluginID string) (string, error)
}

var _ Source = (*persistence.Store)(nil)

// Config configures a Host. Zero values take the defaults.
type Config struct {
	// Source gives bindings and bytes; required.
	Source Source
	// CacheDir holds wazero's compilation cache and the downloaded
	// modules; required (the node's data directory/plugins).
	CacheDir string
	// KeepResident is how long a binding's compiled module and instances
	// stay in memory after its last call.
	KeepResident time.Duration
	// RefetchAfter is how old a binding's ETag check may get before a
	// call re-validates it, in the background.
	RefetchAfter time.Duration
	// MaxMemory bounds the linear memory of each Wasm module of an
	// instance, in bytes (rounded down to 64 KiB pages).
	MaxMemory int64
	// Timeout bounds one call's wall time.
	Timeout time.Duration
	// MaxOutput bounds the output of one call, in bytes.
	MaxOutput int
	// AllowedHosts turns Extism's HTTP host function on for these hosts
	// (globs allowed); empty means plug-ins have no network.
	AllowedHosts []string
	// HostAllowed, when set, is the egress policy applied to the
	// AllowedHosts: a host it refuses is left out.
	HostAllowed func(ctx context.Context, host string) error
	// Registerer receives the metrics; nil registers none.
	Registerer prometheus.Registerer
	// Logger receives the logs; nil discards them.
	Logger *slog.Logger
}

func (c *Config) defaults() {
	if c.KeepResident <= 0 {
		c.KeepResident = DefaultKeepResident
	}
	if c.RefetchAfter <= 0 {
		c.RefetchAfter = DefaultRefetchAfter
	}
	if c.MaxMemory <= 0 {
		c.MaxMemory = DefaultMaxMemory
	}
	if c.Timeout <= 0 {
		c.Timeout = DefaultTimeout
	}
	if c.MaxOutput <= 0 {
		c.MaxOutput = DefaultMaxOutput
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}
