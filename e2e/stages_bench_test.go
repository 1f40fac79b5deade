package e2e

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// stageHist is a scrape of bridge_forward_stage_seconds: by stage, the
// cumulative count of each bucket's upper bound, and the sum.
type stageHist map[string]*stageSeries

type stageSeries struct {
	buckets map[float64]float64
	sum     float64
	count   float64
}

// readStages scrapes the node's stage and statement histograms; the
// statements' series are named "statement:<name>".
func readStages(b *testing.B, api string) stageHist {
	h := stageHist{}
	for _, line := range metric(b, api, "bridge_forward_st") {
		name, rest, ok := strings.Cut(line, "{")
		if !ok {
			continue
		}
		labels, value, ok := strings.Cut(rest, "} ")
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(value, 64)
		if err != nil {
			continue
		}
		var stage, le string
		for _, l := range strings.Split(labels, ",") {
			k, val, _ := strings.Cut(l, "=")
			val = strings.Trim(val, `"`)
			switch k {
			case "stage":
				stage = val
			case "statement":
				stage = "statement:" + val
			case "le":
				le = val
			}
		}
		s := h[stage]
		if s == nil {
			s = &stageSeries{buckets: map[float64]float64{}}
			h[stage] = s
		}
		switch name {
		case "bridge_forward_stage_seconds_bucket", "bridge_forward_statement_seconds_bucket":
			bound := math.Inf(1)
			if le != "+Inf" {
				bound, _ = strconv.ParseFloat(le, 64)
			}
			s.buckets[bound] = v
		case "bridge_forward_stage_seconds_sum", "bridge_forward_statement_seconds_sum":
			s.sum = v
		case "bridge_forward_stage_seconds_count", "bridge_forward_statement_seconds_count":
			s.count = v
		}
	}
	return h
}

// logStageHist logs, by stage, the mean, p50 and p99 (interpolated in
// the buckets) of what the histogram counted between before and after.
// A node without the histogram logs nothing.
func logStageHist(b *testing.B, tag string, before, after stageHist) {
	order := []string{"open", "record", "dispatch", "webhook", "seal", "complete", "publish_queue", "publish", "statement:record", "statement:complete"}
	var out []string
	var total float64
	for _, st := range order {
		a := after[st]
		if a == nil {
			continue
		}
		p := before[st]
		if p == nil {
			p = &stageSeries{buckets: map[float64]float64{}}
		}
		n := a.count - p.count
		if n <= 0 {
			continue
		}
		bounds := make([]float64, 0, len(a.buckets))
		for k := range a.buckets {
			bounds = append(bounds, k)
		}
		slices.Sort(bounds)
		q := func(f float64) float64 {
			rank := f * n
			prevBound, prevCount := 0.0, 0.0
			for _, k := range bounds {
				c := a.buckets[k] - p.buckets[k]
				if c >= rank {
					if math.IsInf(k, 1) {
						return prevBound * 1000
					}
					if c == prevCount {
						return k * 1000
					}
					return (prevBound + (k-prevBound)*(rank-prevCount)/(c-prevCount)) * 1000
				}
				prevBound, prevCount = k, c
			}
			return prevBound * 1000
		}
		mean := (a.sum - p.sum) / n * 1000
		if !strings.HasPrefix(st, "statement:") {
			total += mean
		}
		out = append(out, fmt.Sprintf("%s (%.0f): mean %.2f p50 %.2f p99 %.2f", st, n, mean, q(0.5), q(0.99)))
	}
	if len(out) == 0 {
		return
	}
	b.Logf("%s bridge stage timing (ms, bridge_forward_stage_seconds; sum of means %.2f):\n%s", tag, total, strings.Join(out, "\n"))
}
