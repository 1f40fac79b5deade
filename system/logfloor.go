package system

import (
	"context"
	"log/slog"
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
