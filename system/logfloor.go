package system

import (
	"context"
	"errors"
	"log/slog"
	nethttp "net/http"
)

// levelFloor drops records below min, for a chatty library's logger.
type levelFloor struct {
	h   slog.Handler
	min slog.Level
}

func (l levelFloor) Enabled(ctx context.Context, level slog.Level) bool {
	return level >= l.min && l.h.Enabled(ctx, level)
}
func (l levelFloor) Handle(ctx context.Context, r slog.Record) error { return l.h.Handle(ctx, r) }
func (l levelFloor) WithAttrs(as []slog.Attr) slog.Handler {
	return levelFloor{h: l.h.WithAttrs(as), min: l.min}
}
func (l levelFloor) WithGroup(name string) slog.Handler {
	return levelFloor{h: l.h.WithGroup(name), min: l.min}
}

// automanagedStopping is the message protoactor's automanaged provider logs
// at ERROR whenever its health server returns, including on every normal
// stop.
const automanagedStopping = "Automanaged server stopping..!"

// expectedStops lowers to DEBUG the record the automanaged provider writes
// at ERROR on a normal stop (its health server closed on purpose), so that
// a normal stop is quiet and an ERROR from protoactor always means
// something went wrong. Any other error from that server stays an ERROR.
type expectedStops struct{ h slog.Handler }

func (e expectedStops) Enabled(ctx context.Context, level slog.Level) bool {
	return e.h.Enabled(ctx, level)
}

func (e expectedStops) Handle(ctx context.Context, r slog.Record) error {
	if r.Level >= slog.LevelError && r.Message == automanagedStopping && closedOnPurpose(r) {
		if !e.h.Enabled(ctx, slog.LevelDebug) {
			return nil
		}
		debug := slog.NewRecord(r.Time, slog.LevelDebug, r.Message, r.PC)
		r.Attrs(func(a slog.Attr) bool { debug.AddAttrs(a); return true })
		r = debug
	}
	return e.h.Handle(ctx, r)
}

func (e expectedStops) WithAttrs(as []slog.Attr) slog.Handler {
	return expectedStops{h: e.h.WithAttrs(as)}
}

func (e expectedStops) WithGroup(name string) slog.Handler {
	return expectedStops{h: e.h.WithGroup(name)}
}

// closedOnPurpose reports whether the record's error attribute is
// http.ErrServerClosed.
func closedOnPurpose(r slog.Record) bool {
	found := false
	r.Attrs(func(a slog.Attr) bool {
		if err, ok := a.Value.Any().(error); ok && a.Key == "error" && errors.Is(err, nethttp.ErrServerClosed) {
			found = true
			return false
		}
		return true
	})
	return found
}
