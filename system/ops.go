package system

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// opsServer serves the probes and metrics of a process that has no HTTP
// API of its own: `bridge xmtp-node`. A bridge node serves the same paths
// from its API.
type opsServer struct {
	srv  *http.Server
	ln   net.Listener
	errs chan error
}

// startOps listens on addr and serves /healthz (the process runs), /readyz
// (503 while ready returns an error) and /metrics (the registry).
func startOps(addr string, reg *prometheus.Registry, ready func(context.Context) error, log *slog.Logger) (*opsServer, error) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeProbe(w, http.StatusOK, "")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), readyTimeout)
		defer cancel()
		if err := ready(ctx); err != nil {
			log.Warn("not ready", "err", err)
			writeProbe(w, http.StatusServiceUnavailable, "not ready: a dependency is down")
			return
		}
		writeProbe(w, http.StatusOK, "")
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s (BRIDGE_XMTP_NODE_OPS_ADDR): %w", addr, err)
	}
	o := &opsServer{
		srv:  &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second},
		ln:   ln,
		errs: make(chan error, 1),
	}
	go func() {
		if err := o.srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			o.errs <- fmt.Errorf("serve ops endpoints on %s: %w", ln.Addr(), err)
		}
	}()
	log.Info("ops endpoints listening", "ops_addr", ln.Addr().String())
	return o, nil
}

func writeProbe(w http.ResponseWriter, status int, message string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	body := map[string]any{"ok": status == http.StatusOK}
	if message != "" {
		body["error"] = message
	}
	json.NewEncoder(w).Encode(body)
}

func (o *opsServer) shutdown(ctx context.Context) error {
	if err := o.srv.Shutdown(ctx); err != nil {
		return fmt.Errorf("stop ops endpoints: %w", err)
	}
	return nil
}
