package http

import (
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/adaptor"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics are the HTTP server's own Prometheus metrics.
type metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
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
	}
	for _, c := range []prometheus.Collector{m.requests, m.duration} {
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

// metricsHandler serves the injected registry in the Prometheus format.
func (s *Server) metricsHandler() fiber.Handler {
	return adaptor.HTTPHandler(promhttp.HandlerFor(s.opts.Registry, promhttp.HandlerOpts{Registry: s.opts.Registry}))
}
