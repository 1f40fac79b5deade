package monitoring

import (
	"regexp"
	"sort"
	"strings"
	"testing"
)

// promqlWords are the PromQL keywords that are written like metric names.
var promqlWords = map[string]bool{
	"and": true, "or": true, "unless": true, "bool": true, "offset": true, "atan2": true,
	"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true,
	"inf": true, "nan": true,
}

// aggregations are the PromQL aggregation operators, which may be
// followed by by/without before their parenthesised arguments.
var aggregations = map[string]bool{
	"sum": true, "min": true, "max": true, "avg": true, "group": true, "stddev": true, "stdvar": true,
	"count": true, "count_values": true, "bottomk": true, "topk": true, "quantile": true,
}

// labelListWords are followed by a parenthesised list of label names.
var labelListWords = map[string]bool{
	"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true,
}

var metricNameRE = regexp.MustCompile(`^[a-zA-Z_:][a-zA-Z0-9_:]*$`)

// metricNames returns the metric names a PromQL expression (or a Grafana
// expression with $variables) selects, sorted and without duplicates. It
// is a tokenizer, not a parser: it skips strings, label matchers in {},
// ranges in [], numbers, $variables, the label lists of by/without/on/
// ignoring/group_left/group_right, and identifiers followed by "(", which
// are functions and aggregations. Grafana's label_values(metric, label) is
// read as its metric.
func metricNames(expr string) []string {
	seen := map[string]bool{}
	isIdentStart := func(c byte) bool { return c == '_' || c == ':' || (c|0x20 >= 'a' && c|0x20 <= 'z') }
	isIdent := func(c byte) bool { return isIdentStart(c) || (c >= '0' && c <= '9') }
	// skipPast returns the index after the bracket that closes the one at
	// i, or len(expr) when it is not closed.
	skipPast := func(i int, open, close byte) int {
		depth := 0
		for ; i < len(expr); i++ {
			switch c := expr[i]; {
			case c == '"' || c == '\'' || c == '`':
				i = skipString(expr, i) - 1
			case c == open:
				depth++
			case c == close:
				depth--
				if depth == 0 {
					return i + 1
				}
			}
		}
		return len(expr)
	}
	nextNonSpace := func(i int) int {
		for i < len(expr) && (expr[i] == ' ' || expr[i] == '\t' || expr[i] == '\n' || expr[i] == '\r') {
			i++
		}
		return i
	}
	for i := 0; i < len(expr); {
		c := expr[i]
		switch {
		case c == '"' || c == '\'' || c == '`':
			i = skipString(expr, i)
		case c == '{':
			i = skipPast(i, '{', '}')
		case c == '[':
			i = skipPast(i, '[', ']')
		case c == '$':
			i++
			for i < len(expr) && (isIdent(expr[i]) || expr[i] == '{' || expr[i] == '}') {
				i++
			}
		case c >= '0' && c <= '9', c == '.':
			// Numbers, including 1e3, 0x1f and durations such as 5m.
			for i < len(expr) && (isIdent(expr[i]) || expr[i] == '.') {
				i++
			}
		case isIdentStart(c):
			start := i
			for i < len(expr) && isIdent(expr[i]) {
				i++
			}
			word := expr[start:i]
			next := nextNonSpace(i)
			switch {
			case labelListWords[word] && next < len(expr) && expr[next] == '(':
				i = skipPast(next, '(', ')')
			case word == "label_values" && next < len(expr) && expr[next] == '(':
				// label_values(metric, label) or label_values(label).
				end := skipPast(next, '(', ')')
				args := strings.Split(strings.Trim(expr[next:end], "()"), ",")
				if len(args) == 2 {
					for _, n := range metricNames(args[0]) {
						seen[n] = true
					}
				}
				i = end
			case next < len(expr) && expr[next] == '(':
				// A function or an aggregation: its arguments follow.
			case aggregations[word] && next < len(expr) && isIdentStart(expr[next]):
				// "sum by (le) (...)": the modifier follows.
			case promqlWords[strings.ToLower(word)]:
			default:
				seen[word] = true
			}
		default:
			i++
		}
	}
	names := make([]string, 0, len(seen))
	for n := range seen {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// skipString returns the index after the string literal that starts at i.
func skipString(s string, i int) int {
	quote := s[i]
	for j := i + 1; j < len(s); j++ {
		switch s[j] {
		case '\\':
			if quote != '`' {
				j++
			}
		case quote:
			return j + 1
		}
	}
	return len(s)
}

func TestMetricNames(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		expr string
		want string
	}{
		{`up{job="bridge"} == 0`, "up"},
		{`bridge_ready == 0 unless on(instance) bridge_cluster_draining == 1`, "bridge_cluster_draining bridge_ready"},
		{`sum by (instance, kind) (rate(bridge_persistence_errors_total[5m])) > 0.1`, "bridge_persistence_errors_total"},
		{`histogram_quantile(0.95, sum by (le) (rate(bridge_canary_rtt_seconds_bucket{instance=~"$instance"}[$__rate_interval])))`, "bridge_canary_rtt_seconds_bucket"},
		{`time() - max by (bridge) (bridge_canary_last_success_timestamp_seconds) > 900`, "bridge_canary_last_success_timestamp_seconds"},
		{`sum(rate(a_total{x="{b}"}[1m])) / sum(rate(b_total[1m])) > 0.25 and sum(c) > 1e3`, "a_total b_total c"},
		{`x offset 5m or y * on (a) group_left (b) z`, "x y z"},
		{`label_values(bridge_build_info, instance)`, "bridge_build_info"},
		{`label_values(instance)`, ""},
		{`sum(x) by (le)`, "x"},
		{`sum by (le) (x) + count without (a) (y)`, "x y"},
		{`sum + count`, "count sum"},
		{`{__name__="x"}`, ""},
	} {
		if got := strings.Join(metricNames(c.expr), " "); got != c.want {
			t.Errorf("metricNames(%q) = %q, want %q", c.expr, got, c.want)
		}
	}
}

// FuzzMetricNames feeds arbitrary expressions to the tokenizer: it must
// return, never panic or loop, and every name it returns must be a valid
// metric name.
func FuzzMetricNames(f *testing.F) {
	for _, s := range []string{`up == 0`, `sum by (le) (rate(x_bucket{a="b"}[5m]))`, `"unterminated`, `{[(`, `$x{y}`, `label_values(a, b)`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, expr string) {
		for _, n := range metricNames(expr) {
			if !metricNameRE.MatchString(n) {
				t.Fatalf("metricNames(%q) returned %q, not a metric name", expr, n)
			}
		}
	})
}
