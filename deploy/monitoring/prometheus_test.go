package monitoring

import (
	"context"
	"encoding/json"
	"fmt"
	"github.com/xmtpbridge/bridge/internal/freeport"
	"github.com/xmtpbridge/bridge/internal/testkit"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"
)

// prometheusServer is a real Prometheus process started for one test.
type prometheusServer struct {
	base string // http://127.0.0.1:port
	cmd  *exec.Cmd
	logs *testkit.Buffer
	done chan struct{}
}

// startPrometheus runs Debian's prometheus with the configuration config
// (which may name files in dir) on a free loopback port and its data in a
// temporary directory, waits until it is ready, and stops it when the test
// ends.
func startPrometheus(t testing.TB, dir, config string) *prometheusServer {
	t.Helper()
	bin := tool(t, "prometheus")
	cfgPath := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgPath, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	var lastLogs string
	// The free port can be taken between finding it and binding it; try
	// again on a new one when Prometheus exits at once.
	for attempt := 0; attempt < 3; attempt++ {
		addr := freeport.Addr(t)
		p := &prometheusServer{base: "http://" + addr, logs: &testkit.Buffer{}, done: make(chan struct{})}
		p.cmd = exec.Command(bin,
			"--config.file="+cfgPath,
			"--storage.tsdb.path="+filepath.Join(dir, fmt.Sprintf("data%d", attempt)),
			"--web.listen-address="+addr,
			"--log.level=warn",
		)
		p.cmd.Stdout, p.cmd.Stderr = p.logs, p.logs
		if err := p.cmd.Start(); err != nil {
			t.Fatalf("start prometheus: %v", err)
		}
		go func() { p.cmd.Wait(); close(p.done) }()
		t.Cleanup(p.stop)
		deadline := time.Now().Add(30 * time.Second)
		for time.Now().Before(deadline) {
			select {
			case <-p.done:
				deadline = time.Time{}
				continue
			default:
			}
			if resp, err := http.Get(p.base + "/-/ready"); err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					return p
				}
			}
			time.Sleep(100 * time.Millisecond)
		}
		p.stop()
		lastLogs = p.logs.String()
	}
	t.Fatalf("prometheus did not become ready:\n%s", lastLogs)
	return nil
}

// stop ends the process: SIGTERM, then SIGKILL if it has not exited in
// ten seconds.
func (p *prometheusServer) stop() {
	select {
	case <-p.done:
		return
	default:
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
	}
}

// api calls one endpoint of Prometheus's HTTP API and decodes its data.
func (p *prometheusServer) api(path string, params url.Values, data any) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	u := p.base + path
	if len(params) > 0 {
		u += "?" + params.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	var envelope struct {
		Status string          `json:"status"`
		Error  string          `json:"error"`
		Data   json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(body, &envelope); err != nil {
		return fmt.Errorf("GET %s: %d %s", path, resp.StatusCode, body)
	}
	if envelope.Status != "success" {
		return fmt.Errorf("GET %s: %s", path, envelope.Error)
	}
	return json.Unmarshal(envelope.Data, data)
}

// sample is one series of an instant query.
type sample struct {
	Metric map[string]string `json:"metric"`
	Value  [2]any            `json:"value"`
}

// query runs an instant PromQL query.
func (p *prometheusServer) query(q string) ([]sample, error) {
	var data struct {
		ResultType string   `json:"resultType"`
		Result     []sample `json:"result"`
	}
	if err := p.api("/api/v1/query", url.Values{"query": {q}}, &data); err != nil {
		return nil, err
	}
	if data.ResultType != "vector" {
		return nil, fmt.Errorf("query %s: result type %s, want vector", q, data.ResultType)
	}
	return data.Result, nil
}

// activeAlert is one alert of /api/v1/alerts.
type activeAlert struct {
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
	State       string            `json:"state"`
}

func (p *prometheusServer) alerts() ([]activeAlert, error) {
	var data struct {
		Alerts []activeAlert `json:"alerts"`
	}
	err := p.api("/api/v1/alerts", nil, &data)
	return data.Alerts, err
}

// loadedRule is one rule of /api/v1/rules.
type loadedRule struct {
	Name        string            `json:"name"`
	Query       string            `json:"query"`
	Type        string            `json:"type"`
	Duration    float64           `json:"duration"`
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
	Health      string            `json:"health"`
}

func (p *prometheusServer) rules() ([]loadedRule, error) {
	var data struct {
		Groups []struct {
			Name  string       `json:"name"`
			Rules []loadedRule `json:"rules"`
		} `json:"groups"`
	}
	if err := p.api("/api/v1/rules", nil, &data); err != nil {
		return nil, err
	}
	var rules []loadedRule
	for _, g := range data.Groups {
		rules = append(rules, g.Rules...)
	}
	return rules, nil
}

// TestRulesLoadInPrometheus loads alerts.yml into a real Prometheus and
// checks, in Prometheus's own reading of the file, that the rules are the
// ones the other tests see and that each carries a severity and the three
// annotations the runbook table relies on.
func TestRulesLoadInPrometheus(t *testing.T) {
	t.Parallel()
	_, scanned := loadAlertRules(t)
	abs, err := filepath.Abs(alertsFile)
	if err != nil {
		t.Fatal(err)
	}
	p := startPrometheus(t, t.TempDir(), "global:\n  evaluation_interval: 1s\nrule_files:\n  - "+abs+"\n")
	loaded, err := p.rules()
	if err != nil {
		t.Fatalf("read rules: %v", err)
	}
	var names, want []string
	for _, r := range loaded {
		if r.Type != "alerting" {
			t.Errorf("rule %s is a %s rule; alerts.yml holds alerting rules only", r.Name, r.Type)
			continue
		}
		names = append(names, r.Name)
		if s := r.Labels["severity"]; s != "critical" && s != "warning" {
			t.Errorf("rule %s: severity %q, want critical or warning", r.Name, s)
		}
		for _, a := range []string{"summary", "description", "runbook"} {
			v := strings.TrimSpace(r.Annotations[a])
			if v == "" {
				t.Errorf("rule %s has no %s annotation", r.Name, a)
			}
			if strings.Contains(v, "\n") {
				t.Errorf("rule %s: the %s annotation is more than one line", r.Name, a)
			}
		}
	}
	for _, r := range scanned {
		want = append(want, r.name)
	}
	sort.Strings(names)
	sort.Strings(want)
	if strings.Join(names, " ") != strings.Join(want, " ") {
		t.Errorf("Prometheus loaded the rules %v; scanning alerts.yml found %v", names, want)
	}
	readme := readFile(t, filepath.Join(prometheusDir, "README.md"))
	for _, n := range want {
		if !strings.Contains(readme, "`"+n+"`") {
			t.Errorf("deploy/prometheus/README.md does not describe %s", n)
		}
	}
}
