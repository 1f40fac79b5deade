package system

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// newRegistry builds the registry of one process: the Go runtime and
// process collectors, and bridge_build_info, which carries the version of
// the binary and the node id as labels and is always 1.
func newRegistry(nodeID, version, commit string) (*prometheus.Registry, error) {
	reg := prometheus.NewRegistry()
	buildInfo := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "bridge_build_info",
		Help:        "Build of the running bridge binary; always 1.",
		ConstLabels: prometheus.Labels{"version": version, "commit": commit, "node": nodeID},
	})
	buildInfo.Set(1)
	for _, c := range []prometheus.Collector{
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		buildInfo,
	} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register process metrics: %w", err)
		}
	}
	return reg, nil
}
