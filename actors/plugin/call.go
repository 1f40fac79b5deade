package plugin

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// CallError is a failed plug-in call: the reason counted in
// bridge_plugin_errors_total and the binding's onError.
type CallError struct {
	Point   Point
	Reason  string
	OnError OnError
	Err     error
}

func (e *CallError) Error() string {
	return fmt.Sprintf("plugin %s: %s: %v", e.Point, e.Reason, e.Err)
}

func (e *CallError) Unwrap() error { return e.Err }

// call runs bd's plug-in on input, within the sandbox's limits.
func (h *Host) call(ctx context.Context, bd *binding, in []byte) ([]byte, *CallError) {
	pt := string(bd.point)
	start := time.Now()
	h.metrics.pointCalls[bd.point].Inc()
	out, reason, err := h.callOnce(ctx, bd, in)
	h.metrics.pointSeconds[bd.point].Observe(time.Since(start).Seconds())
	if err == nil {
		return out, nil
	}
	h.metrics.errors.WithLabelValues(pt, reason).Inc()
	h.cfg.Logger.Warn("plugin call failed", "bridge", bd.b.BridgeID, "plugin", bd.b.PluginID, "point", pt,
		"reason", reason, "on_error", bd.b.OnError, "error", err)
	return nil, &CallError{Point: bd.point, Reason: reason, OnError: OnError(bd.b.OnError), Err: err}
}

func (h *Host) callOnce(ctx context.Context, bd *binding, in []byte) ([]byte, string, error) {
	h.maybeRevalidate(bd)
	p := bd.cur.Load()
	// Loading is bounded by the caller (the delivery's own timeout), not
	// by the call's: a cold start compiles, from the on-disk cache when
	// the module was seen before.
	inst, cold, err := p.get(ctx)
	if cold {
		h.metrics.cacheMisses.Inc()
	} else if err == nil {
		h.metrics.cacheHits.Inc()
	}
	if err != nil {
		return nil, ReasonUnavailable, err
	}
	cctx, cancel := context.WithTimeout(ctx, h.cfg.Timeout)
	defer cancel()
	rc, out, err := h.invoke(cctx, inst, string(bd.point), in)
	ok := err == nil && rc == 0
	var reason string
	switch {
	case ok:
	case cctx.Err() != nil:
		reason, err = ReasonTimeout, fmt.Errorf("call exceeded %s: %w", h.cfg.Timeout, context.DeadlineExceeded)
	case isMemory(err, inst):
		reason = ReasonMemory
	default:
		reason = ReasonTrap
		if err == nil {
			err = fmt.Errorf("plugin returned %d", rc)
		}
	}
	p.put(inst, ok)
	if !ok {
		return nil, reason, err
	}
	if len(out) > h.cfg.MaxOutput {
		return nil, ReasonOutputLimit, fmt.Errorf("output of %d bytes is over the %d-byte limit", len(out), h.cfg.MaxOutput)
	}
	return out, "", nil
}

// invoke calls the instance, turning a panic of the SDK into an error.
func (h *Host) invoke(ctx context.Context, inst *instance, name string, in []byte) (rc uint32, out []byte, err error) {
	defer func() {
		if r := recover(); r != nil {
			rc, out, err = 1, nil, fmt.Errorf("plugin panicked: %v", r)
		}
	}()
	return inst.p.CallWithContext(ctx, name, in)
}

// isMemory reports whether a failed call ran out of memory: the guest said
// so on its standard error (Go, Rust and C runtimes do) or the engine did.
func isMemory(err error, inst *instance) bool {
	text := strings.ToLower(inst.stderr.buf.String())
	if err != nil {
		text += strings.ToLower(err.Error())
	}
	return strings.Contains(text, "out of memory") || strings.Contains(text, "memory limit") ||
		strings.Contains(text, "cannot allocate")
}

// errPluginFailed is the cause recorded for a delivery a plug-in failure
// sent to the dead letters.
var errPluginFailed = errors.New("plug-in failed")
