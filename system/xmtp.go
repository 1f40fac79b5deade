package system

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/xmtpbridge/bridge/system/config"
	"github.com/xmtpbridge/bridge/xmtp/node"
)

// xmtpEndpoint is the XMTP node a bridge node talks to: the local node it
// runs in-process, or a remote one it only checks.
type xmtpEndpoint struct {
	// addr is the gRPC host:port of the message API.
	addr string
	// local is the in-process node, nil for a remote one.
	local *node.Node
}

// startXMTP starts the local XMTP node when the configuration asks for it,
// and otherwise checks that the remote node accepts connections.
func startXMTP(ctx context.Context, cfg *config.Config, log *slog.Logger, reg prometheus.Registerer) (*xmtpEndpoint, error) {
	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	if !cfg.RunsLocalXMTPNode() {
		if err := dialCheck(ctx, cfg.XMTPNode); err != nil {
			return nil, fmt.Errorf("reach xmtp node %s (BRIDGE_XMTP_NODE): %w", cfg.XMTPNode, err)
		}
		if cfg.XMTPTLS {
			if err := tlsCheck(ctx, cfg.XMTPNode, xmtpTLSConfig(cfg)); err != nil {
				return nil, fmt.Errorf("reach xmtp node %s over tls (BRIDGE_XMTP_TLS, BRIDGE_XMTP_CA_FILE): %w", cfg.XMTPNode, err)
			}
		}
		log.Info("xmtp node reachable", "xmtp_node", cfg.XMTPNode, "tls", cfg.XMTPTLS)
		return &xmtpEndpoint{addr: cfg.XMTPNode}, nil
	}
	n, err := startLocalXMTPNode(ctx, cfg, log, reg)
	if err != nil {
		return nil, err
	}
	return &xmtpEndpoint{addr: n.GRPCAddr(), local: n}, nil
}

// xmtpTLSConfig is the TLS configuration of the connection to a remote
// XMTP node: TLS 1.2 or newer, and the authorities of BRIDGE_XMTP_CA_FILE
// instead of the system's roots when it is set.
func xmtpTLSConfig(cfg *config.Config) *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: cfg.XMTPRootCAs, NextProtos: []string{"h2"}}
}

// tlsCheck makes a TLS handshake with addr, so that a node that does not
// speak TLS, or whose certificate is not trusted, stops the start with
// the reason rather than failing every call later.
func tlsCheck(ctx context.Context, addr string, tc *tls.Config) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("tls handshake with %s: %w", addr, err)
	}
	tc = tc.Clone()
	tc.ServerName = host
	d := tls.Dialer{Config: tc}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("tls handshake with %s: %w", addr, err)
	}
	return conn.Close()
}

func startLocalXMTPNode(ctx context.Context, cfg *config.Config, log *slog.Logger, reg prometheus.Registerer) (*node.Node, error) {
	n, err := node.New(node.Config{
		DatabaseURL:               cfg.DatabaseURL,
		GRPCAddr:                  cfg.XMTPNodeGRPCAddr,
		HTTPAddr:                  cfg.XMTPNodeHTTPAddr,
		Authn:                     cfg.XMTPNodeAuthn,
		MaxEnvelopeBytes:          cfg.XMTPMaxEnvelopeBytes,
		MaxTopicsPerRequest:       cfg.XMTPMaxTopicsPerRequest,
		MaxEnvelopesPerPublish:    cfg.XMTPMaxEnvelopesPerPublish,
		SubscriberBufferBytes:     cfg.XMTPSubscriberBufferBytes,
		MaxSubscriptionsPerClient: cfg.XMTPMaxSubscriptionsPerClient,
		MaxSubscriptions:          cfg.XMTPMaxSubscriptions,
		MaxPublishesInFlight:      cfg.XMTPMaxPublishesInFlight,
		MaxConns:                  cfg.XMTPNodeMaxConns,
		Logger:                    log.With("component", "xmtp-node"),
		Registerer:                reg,
	})
	if err != nil {
		return nil, fmt.Errorf("build local xmtp node: %w", err)
	}
	if err := n.Start(ctx); err != nil {
		return nil, fmt.Errorf("start local xmtp node (grpc %s, http %s): %w", cfg.XMTPNodeGRPCAddr, cfg.XMTPNodeHTTPAddr, err)
	}
	log.Info("local xmtp node started", "grpc_addr", n.GRPCAddr(), "http_addr", n.HTTPAddr(), "authn", cfg.XMTPNodeAuthn)
	return n, nil
}

// ready checks the XMTP node: the local node's own check, or a TCP
// connection to the remote one.
func (x *xmtpEndpoint) ready(ctx context.Context) error {
	if x.local != nil {
		if err := x.local.Ready(ctx); err != nil {
			return fmt.Errorf("local xmtp node: %w", err)
		}
		return nil
	}
	if err := dialCheck(ctx, x.addr); err != nil {
		return fmt.Errorf("reach xmtp node %s: %w", x.addr, err)
	}
	return nil
}

func (x *xmtpEndpoint) stop(ctx context.Context) error {
	if x.local == nil {
		return nil
	}
	if err := x.local.Stop(ctx); err != nil {
		return fmt.Errorf("stop local xmtp node: %w", err)
	}
	return nil
}

// RunXMTPNode runs only the local XMTP node, as `bridge xmtp-node` does,
// with its probes and metrics on BRIDGE_XMTP_NODE_OPS_ADDR when that is
// set. It returns nil after a clean stop once ctx ends, or the failure of
// the ops listener; either way it stops the node within the shutdown
// timeout.
func RunXMTPNode(ctx context.Context, opts Options) error {
	cfg := opts.Config
	if cfg == nil {
		return errors.New("run xmtp node: Config is nil")
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	registry, err := newRegistry(cfg.NodeID, opts.Version, opts.Commit)
	if err != nil {
		return err
	}
	var pp *pprofServer
	if cfg.PprofAddr != "" {
		if pp, err = startPprof(cfg.PprofAddr, log); err != nil {
			return err
		}
	}
	n, err := startLocalXMTPNode(ctx, cfg, log, registry)
	if err != nil {
		stopCtx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
		defer cancel()
		return errors.Join(err, pp.stop(stopCtx))
	}
	var ops *opsServer
	var opsErrs <-chan error
	if cfg.XMTPNodeOpsAddr != "" {
		ops, err = startOps(cfg.XMTPNodeOpsAddr, registry, n.Ready, log)
		if err != nil {
			stopCtx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
			defer cancel()
			return errors.Join(err, n.Stop(stopCtx), pp.stop(stopCtx))
		}
		opsErrs = ops.errs
	}
	var runErr error
	select {
	case <-ctx.Done():
		log.Info("stop requested; shutting down", "timeout", cfg.ShutdownTimeout)
	case runErr = <-opsErrs:
		log.Error("component failed; stopping", "err", runErr)
	}
	stopCtx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	var opsStop error
	if ops != nil {
		opsStop = ops.shutdown(stopCtx)
	}
	return errors.Join(runErr, opsStop, n.Stop(stopCtx), pp.stop(stopCtx))
}
