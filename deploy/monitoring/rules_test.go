package monitoring

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"
)

// alertRule is one alerting rule of alerts.yml as the file spells it.
type alertRule struct {
	name string
	expr string
	// exprLine is the index of the rule's `expr:` line in the file.
	exprLine int
}

var (
	alertLineRE = regexp.MustCompile(`^\s*- alert:\s*(.*?)\s*$`)
	alertNameRE = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]*$`)
	exprLineRE  = regexp.MustCompile(`^(\s*)expr:\s*(.*?)\s*$`)
	groupLineRE = regexp.MustCompile(`^\s*- (name|record):`)
	forLineRE   = regexp.MustCompile(`(?m)^(\s+for:\s*)\S+\s*$`)
)

// scanAlertRules finds every alerting rule of a rule file written the way
// alerts.yml is: `- alert: Name` followed by a one-line `expr:`. The real
// parsers (promtool, Prometheus) check the file's YAML; the tests compare
// their view of the rules with this one, so a rule this scan misses fails.
func scanAlertRules(text string) ([]alertRule, error) {
	lines := strings.Split(text, "\n")
	var rules []alertRule
	for i := 0; i < len(lines); i++ {
		m := alertLineRE.FindStringSubmatch(lines[i])
		if m == nil {
			continue
		}
		name := m[1]
		if !alertNameRE.MatchString(name) {
			return nil, fmt.Errorf("line %d: alert name %q is not a plain identifier", i+1, name)
		}
		rule := alertRule{name: name, exprLine: -1}
		for j := i + 1; j < len(lines); j++ {
			if alertLineRE.MatchString(lines[j]) || groupLineRE.MatchString(lines[j]) {
				break
			}
			if e := exprLineRE.FindStringSubmatch(lines[j]); e != nil {
				expr := e[2]
				if expr == "" || strings.HasPrefix(expr, "|") || strings.HasPrefix(expr, ">") {
					return nil, fmt.Errorf("line %d: rule %s: keep expr on one line", j+1, name)
				}
				rule.expr, rule.exprLine = expr, j
				break
			}
		}
		if rule.exprLine < 0 {
			return nil, fmt.Errorf("line %d: rule %s has no expr", i+1, name)
		}
		rules = append(rules, rule)
	}
	if len(rules) == 0 {
		return nil, fmt.Errorf("no alert rules found")
	}
	return rules, nil
}

// loadAlertRules scans the shipped alerts.yml.
func loadAlertRules(t testing.TB) (string, []alertRule) {
	t.Helper()
	text := readFile(t, alertsFile)
	rules, err := scanAlertRules(text)
	if err != nil {
		t.Fatalf("%s: %v", alertsFile, err)
	}
	seen := map[string]bool{}
	for _, r := range rules {
		if seen[r.name] {
			t.Fatalf("%s: alert %s is defined twice", alertsFile, r.name)
		}
		seen[r.name] = true
	}
	return text, rules
}

// withExprs returns text with the expression of every rule replaced by
// expr(rule).
func withExprs(text string, rules []alertRule, expr func(alertRule) string) string {
	lines := strings.Split(text, "\n")
	for _, r := range rules {
		indent := exprLineRE.FindStringSubmatch(lines[r.exprLine])[1]
		lines[r.exprLine] = indent + "expr: " + expr(r)
	}
	return strings.Join(lines, "\n")
}

// withShortFors returns the rule file with every `for:` duration replaced
// by d, so a live test waits seconds instead of minutes for the same rules.
func withShortFors(text string, d string) string {
	return forLineRE.ReplaceAllString(text, "${1}"+d)
}

func TestPromtoolChecksConfigRulesAndUnitTests(t *testing.T) {
	t.Parallel()
	promtool := tool(t, "promtool")
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"check", "config", filepath.Base(prometheusConfig)}, "is valid prometheus config file syntax"},
		{[]string{"check", "rules", filepath.Base(alertsFile)}, "SUCCESS"},
		{[]string{"test", "rules", filepath.Base(alertsTestFile)}, "SUCCESS"},
	} {
		out, err := run(t, time.Minute, prometheusDir, promtool, c.args...)
		if err != nil || !strings.Contains(out, c.want) {
			t.Errorf("promtool %s: %v\n%s", strings.Join(c.args, " "), err, out)
		}
	}
}

// promtoolFailure is one failed alert_rule_test case in promtool's report.
type promtoolFailure struct {
	alert, at string
	// quiet is true when the case expected no alert (exp_alerts: []).
	quiet bool
}

var failureRE = regexp.MustCompile(`alertname: (\w+), time: ([^,\s]+),\s*\n\s*exp:\[(\])?`)

// parsePromtoolFailures reads the failed cases out of the output of
// `promtool test rules`.
func parsePromtoolFailures(out string) []promtoolFailure {
	var fs []promtoolFailure
	for _, m := range failureRE.FindAllStringSubmatch(out, -1) {
		fs = append(fs, promtoolFailure{alert: m[1], at: m[2], quiet: m[3] == "]"})
	}
	return fs
}

// TestEveryRuleHasFiringAndQuietCases proves that alerts_test.yml would
// notice any rule that breaks: with every rule made never true, each rule
// must have a failing case that expected it to fire; with every rule made
// always true, each must have a failing case that expected it quiet. A case
// that is quiet only because the rule's `for:` has not passed does not
// count, since an always-true rule is pending there too. Rules do not read
// each other, so one promtool run checks all of them at once.
func TestEveryRuleHasFiringAndQuietCases(t *testing.T) {
	t.Parallel()
	promtool := tool(t, "promtool")
	text, rules := loadAlertRules(t)
	tests := readFile(t, alertsTestFile)
	if !strings.Contains(tests, "- alerts.yml") {
		t.Fatalf("%s does not load alerts.yml", alertsTestFile)
	}
	for _, mutant := range []struct {
		name  string
		expr  string
		quiet bool // the kind of case that must fail for every rule
	}{
		{"never true", "vector(0) > 1", false},
		{"always true", "vector(1)", true},
	} {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "alerts.yml"), []byte(withExprs(text, rules, func(alertRule) string { return mutant.expr })), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "alerts_test.yml"), []byte(tests), 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := run(t, 2*time.Minute, dir, promtool, "test", "rules", "alerts_test.yml")
		if err == nil {
			t.Errorf("with every rule %s, promtool test rules still passes:\n%s", mutant.name, out)
			continue
		}
		caught := map[string][]string{}
		for _, f := range parsePromtoolFailures(out) {
			if f.quiet == mutant.quiet {
				caught[f.alert] = append(caught[f.alert], f.at)
			}
		}
		if len(caught) == 0 {
			t.Errorf("could not read any failed case in promtool's output:\n%s", out)
			continue
		}
		kind := "fires it"
		if mutant.quiet {
			kind = "keeps it quiet"
		}
		var missing []string
		for _, r := range rules {
			if len(caught[r.name]) == 0 {
				missing = append(missing, r.name)
			}
		}
		sort.Strings(missing)
		if len(missing) > 0 {
			t.Errorf("%s has no case that %s (checked by making the rule %s) for: %s",
				alertsTestFile, kind, mutant.name, strings.Join(missing, ", "))
		}
	}
}

// TestAlertmanagerConfig checks alertmanager.yml with amtool when it is
// installed (Debian's prometheus-alertmanager; the alerts do not need it)
// and always checks that every receiver a route names is defined.
func TestAlertmanagerConfig(t *testing.T) {
	t.Parallel()
	text := readFile(t, alertmanagerFile)
	for _, key := range []string{"route:", "receivers:"} {
		if !regexp.MustCompile(`(?m)^` + key).MatchString(text) {
			t.Errorf("%s has no top-level %s", alertmanagerFile, key)
		}
	}
	defined := map[string]bool{}
	receivers := text[strings.Index(text, "\nreceivers:"):]
	for _, m := range regexp.MustCompile(`(?m)^  - name:\s*(\S+)`).FindAllStringSubmatch(receivers, -1) {
		defined[m[1]] = true
	}
	used := regexp.MustCompile(`(?m)^\s*receiver:\s*(\S+)`).FindAllStringSubmatch(text, -1)
	if len(used) == 0 {
		t.Errorf("%s: no route names a receiver", alertmanagerFile)
	}
	for _, m := range used {
		if !defined[m[1]] {
			t.Errorf("%s: route receiver %s is not defined under receivers", alertmanagerFile, m[1])
		}
	}
	amtool, err := exec.LookPath("amtool")
	if err != nil {
		t.Fatalf("amtool is not installed (Debian's prometheus-alertmanager): run scripts/ensure-tools.sh amtool")
	}
	out, err := run(t, time.Minute, prometheusDir, amtool, "check-config", filepath.Base(alertmanagerFile))
	if err != nil || !strings.Contains(out, "SUCCESS") {
		t.Errorf("amtool check-config: %v\n%s", err, out)
	}
}
