package system

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"
)

// pprofServer serves Go's runtime profiles on BRIDGE_PPROF_ADDR, for
// performance work: nothing else is on it, and it is off unless set.
type pprofServer struct {
	srv *http.Server
	ln  net.Listener
}

// startPprof listens on addr and serves /debug/pprof/.
func startPprof(addr string, log *slog.Logger) (*pprofServer, error) {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s (BRIDGE_PPROF_ADDR): %w", addr, err)
	}
	p := &pprofServer{srv: &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}, ln: ln}
	go func() {
		if err := p.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Warn("pprof server stopped", "error", err)
		}
	}()
	log.Info("serving runtime profiles", "addr", ln.Addr().String())
	return p, nil
}

// stop closes the listener and any profile being taken.
func (p *pprofServer) stop(ctx context.Context) error {
	if p == nil {
		return nil
	}
	return p.srv.Shutdown(ctx)
}
