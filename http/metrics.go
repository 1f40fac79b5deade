package http

import (
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/adaptor"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics are the HTTP server's own Prometheus metrics, and the node's
// readiness as /readyz sees it.
type metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	ready    prometheus.Gauge
	depUp    *prometheus.GaugeVec
	// tokenFailures counts refused relaycc tokens by outcome: refused
	// (a wrong token, counted against the client) or limited (429).
	tokenFailures *prometheus.CounterVec
	// quotaRefusals counts requests refused by a quota: bridges or sends.
	quotaRefusals *prometheus.CounterVec

	// mu guards knownDeps and orders the updates of ready and depUp.
	mu sync.Mutex
	// knownDeps is every dependency name a readiness evaluation has
	// reported, so one that recovers reads 1 instead of disappearing.
	knownDeps map[string]bool
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bridge_http_requests_total",
			Help: "HTTP requests served, by route, method and status class.",
		}, []string{"route", "method", "status_class"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "bridge_http_request_duration_seconds",
			Help:    "Time to serve an HTTP request, by route and method.",
			Buckets: prometheus.DefBuckets,
		}, []string{"route", "method"}),
		ready: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "bridge_ready",
			Help: "1 while the node is ready (the checks of /readyz pass), else 0; evaluated at every scrape.",
		}),
		depUp: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "bridge_dependency_up",
			Help: "1 while a dependency that /readyz checks answers, else 0, by dependency; evaluated at every scrape.",
		}, []string{"dependency"}),
		tokenFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bridge_http_token_failures_total",
			Help: "relaycc /hook and /instance requests whose token was refused (refused) or that were not checked because their address had too many failures (limited).",
		}, []string{"outcome"}),
		quotaRefusals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bridge_http_quota_refusals_total",
			Help: "Requests answered 429 because the account reached a quota: bridges (per account) or sends (per second).",
		}, []string{"quota"}),
		knownDeps: map[string]bool{},
	}
	for _, o := range []string{"refused", "limited"} {
		m.tokenFailures.WithLabelValues(o)
	}
	for _, q := range []string{"bridges", "sends"} {
		m.quotaRefusals.WithLabelValues(q)
	}
	for _, c := range []prometheus.Collector{m.requests, m.duration, m.ready, m.depUp, m.tokenFailures, m.quotaRefusals} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register http metrics: %w", err)
		}
	}
	return m, nil
}

// observe is the outermost middleware: it turns a handler's error into its
// response at once (so the status is known here), then counts the request
// under its route pattern, never its raw path, to keep label sets small.
func (s *Server) observe(c *fiber.Ctx) error {
	start := time.Now()
	if err := c.Next(); err != nil {
		if herr := s.handleError(c, err); herr != nil {
			return errors.Join(err, herr)
		}
	}
	route := c.Route().Path
	if route == "/" {
		// Only this middleware matched: no route exists for the path.
		route = "unmatched"
	}
	status := c.Response().StatusCode()
	class := strconv.Itoa(status/100) + "xx"
	s.metrics.requests.WithLabelValues(route, c.Method(), class).Inc()
	s.metrics.duration.WithLabelValues(route, c.Method()).Observe(time.Since(start).Seconds())
	return nil
}

// setReadiness records one readiness evaluation in bridge_ready and
// bridge_dependency_up. A dependency known from an earlier evaluation that
// this one did not report as down is up.
func (m *metrics) setReadiness(r readiness) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for name := range r.deps {
		m.knownDeps[name] = true
	}
	for name := range m.knownDeps {
		up, checked := r.deps[name]
		if !checked {
			up = true
		}
		m.depUp.WithLabelValues(name).Set(boolGauge(up))
	}
	m.ready.Set(boolGauge(r.err == nil))
}

func boolGauge(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// metricsHandler serves the injected registry in the Prometheus format.
// Each scrape first evaluates readiness, so bridge_ready and
// bridge_dependency_up are current even when nothing calls /readyz.
//
// The store's collector (connection pool and Postgres errors) is registered
// here unless the node registered it already, so that every server that
// serves /metrics exports the store it serves from.
func (s *Server) metricsHandler() fiber.Handler {
	if err := s.opts.Registry.Register(s.opts.Store.Collector()); err != nil {
		var already prometheus.AlreadyRegisteredError
		if !errors.As(err, &already) {
			s.log.Error("register store metrics", "err", err)
		}
	}
	serve := adaptor.HTTPHandler(promhttp.HandlerFor(s.opts.Registry, promhttp.HandlerOpts{Registry: s.opts.Registry}))
	return func(c *fiber.Ctx) error {
		s.metrics.setReadiness(s.evaluateReadiness(c.UserContext()))
		return serve(c)
	}
}
