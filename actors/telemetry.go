package actors

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
)

// newMeterProvider returns an OpenTelemetry meter provider whose
// instruments are collected on reg, so protoactor's own metrics (mailbox
// length, actor spawns and stops, message latency) appear on the node's
// /metrics next to the runtime's. protoactor's default provider would open
// a port of its own instead.
func newMeterProvider(reg prometheus.Registerer) (metric.MeterProvider, error) {
	exp, err := otelprom.New(otelprom.WithRegisterer(reg), otelprom.WithoutScopeInfo(), otelprom.WithoutTargetInfo())
	if err != nil {
		return nil, fmt.Errorf("create protoactor metrics exporter: %w", err)
	}
	return sdkmetric.NewMeterProvider(sdkmetric.WithReader(exp)), nil
}
