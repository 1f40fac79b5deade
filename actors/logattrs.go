package actors

import (
	"context"
	"log/slog"
)

// identityLogger returns log with the bridge id and the identity's
// address on every line, as log.With("bridge", bridgeID, "identity",
// address) does. With formats the attributes into a buffer of its own
// up front, a few hundred bytes for every hosted identity, most of which
// never log a line; this adds them when a line is written.
func identityLogger(log *slog.Logger, bridgeID, address string) *slog.Logger {
	return slog.New(&identityHandler{inner: log.Handler(), bridgeID: bridgeID, address: address})
}

type identityHandler struct {
	inner             slog.Handler
	bridgeID, address string
}

func (h *identityHandler) attrs() []slog.Attr {
	return []slog.Attr{slog.String("bridge", h.bridgeID), slog.String("identity", h.address)}
}

func (h *identityHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.inner.Enabled(ctx, l)
}

func (h *identityHandler) Handle(ctx context.Context, r slog.Record) error {
	out := slog.NewRecord(r.Time, r.Level, r.Message, r.PC)
	out.AddAttrs(h.attrs()...)
	r.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(a)
		return true
	})
	return h.inner.Handle(ctx, out)
}

func (h *identityHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return h.inner.WithAttrs(append(h.attrs(), as...))
}

func (h *identityHandler) WithGroup(name string) slog.Handler {
	return h.inner.WithAttrs(h.attrs()).WithGroup(name)
}
