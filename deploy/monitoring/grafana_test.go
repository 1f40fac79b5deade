package monitoring

import (
	"encoding/json"
	"strings"
	"testing"
)

// dashboard is the part of a Grafana dashboard JSON the tests read.
type dashboard struct {
	UID           string  `json:"uid"`
	Title         string  `json:"title"`
	SchemaVersion int     `json:"schemaVersion"`
	Panels        []panel `json:"panels"`
	Templating    struct {
		List []struct {
			Name  string          `json:"name"`
			Type  string          `json:"type"`
			Query json.RawMessage `json:"query"`
		} `json:"list"`
	} `json:"templating"`
}

type panel struct {
	ID         int         `json:"id"`
	Type       string      `json:"type"`
	Title      string      `json:"title"`
	Datasource *datasource `json:"datasource"`
	GridPos    struct {
		H, W, X, Y int
	} `json:"gridPos"`
	Targets []struct {
		RefID      string      `json:"refId"`
		Expr       string      `json:"expr"`
		Datasource *datasource `json:"datasource"`
	} `json:"targets"`
	Panels []panel `json:"panels"`
}

type datasource struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

// dashboardExpr is one PromQL expression of the dashboard and where it is.
type dashboardExpr struct {
	where string
	expr  string
}

// loadDashboard parses bridge.json and checks its structure: a Prometheus
// datasource variable that every query uses, unique panel ids, panels
// inside the 24-column grid, and a title and an expression for every
// query. It returns every expression, the variables' queries included.
func loadDashboard(t testing.TB) []dashboardExpr {
	t.Helper()
	var d dashboard
	dec := json.NewDecoder(strings.NewReader(readFile(t, dashboardFile)))
	if err := dec.Decode(&d); err != nil {
		t.Fatalf("%s is not valid JSON: %v", dashboardFile, err)
	}
	if d.UID == "" || d.Title == "" {
		t.Errorf("%s: uid and title are required", dashboardFile)
	}
	if d.SchemaVersion < 36 || d.SchemaVersion > 41 {
		t.Errorf("%s: schemaVersion %d, want one of Grafana 9 to 11 (36..41)", dashboardFile, d.SchemaVersion)
	}
	var exprs []dashboardExpr
	hasDatasourceVar := false
	for _, v := range d.Templating.List {
		switch v.Type {
		case "datasource":
			var q string
			if json.Unmarshal(v.Query, &q) == nil && q == "prometheus" && v.Name == "datasource" {
				hasDatasourceVar = true
			}
		case "query":
			var q struct {
				Query string `json:"query"`
			}
			if err := json.Unmarshal(v.Query, &q); err != nil || q.Query == "" {
				t.Errorf("variable %s: no query", v.Name)
				continue
			}
			exprs = append(exprs, dashboardExpr{"variable " + v.Name, q.Query})
		}
	}
	if !hasDatasourceVar {
		t.Errorf("%s: no variable named datasource of type datasource for prometheus", dashboardFile)
	}
	checkDS := func(where string, ds *datasource) {
		if ds == nil || ds.Type != "prometheus" || ds.UID != "${datasource}" {
			t.Errorf("%s: datasource %+v, want the prometheus ${datasource} variable", where, ds)
		}
	}
	ids := map[int]string{}
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			if p.Title == "" {
				t.Errorf("panel %d has no title", p.ID)
			}
			if other, dup := ids[p.ID]; dup || p.ID <= 0 {
				t.Errorf("panel %q: id %d is not unique and positive (also %q)", p.Title, p.ID, other)
			}
			ids[p.ID] = p.Title
			g := p.GridPos
			if g.W <= 0 || g.H <= 0 || g.X < 0 || g.X+g.W > 24 || g.Y < 0 {
				t.Errorf("panel %q: gridPos %+v is outside the 24-column grid", p.Title, g)
			}
			if p.Type == "row" {
				walk(p.Panels)
				continue
			}
			checkDS("panel "+p.Title, p.Datasource)
			if len(p.Targets) == 0 {
				t.Errorf("panel %q has no query", p.Title)
			}
			for _, q := range p.Targets {
				where := "panel " + p.Title + " query " + q.RefID
				if strings.TrimSpace(q.Expr) == "" {
					t.Errorf("%s: empty expr", where)
				}
				checkDS(where, q.Datasource)
				exprs = append(exprs, dashboardExpr{where, q.Expr})
			}
		}
	}
	walk(d.Panels)
	return exprs
}

// dashboardTopics are the subjects the dashboard must show, each as a
// metric some panel reads.
var dashboardTopics = map[string]string{
	"throughput per handler":       "bridge_actor_messages_in_total",
	"latency per handler":          "bridge_forward_delivery_duration_seconds_bucket",
	"canary latency":               "bridge_canary_rtt_seconds_bucket",
	"deliveries by outcome":        "bridge_forward_deliveries_total",
	"dead letters":                 "bridge_forward_dead_letters_total",
	"restarts":                     "bridge_actor_restarts_total",
	"quarantines":                  "bridge_actor_quarantined_total",
	"canary health per bridge":     "bridge_canary_last_success_timestamp_seconds",
	"cluster members":              "bridge_cluster_members",
	"hosted identities per node":   "bridge_actor_hosted_identities",
	"placement lag":                "bridge_cluster_placement_lag_seconds",
	"fenced writes":                "bridge_cluster_fenced_writes_total",
	"readiness":                    "bridge_ready",
	"postgres errors":              "bridge_persistence_errors_total",
	"xmtp subscription connection": "bridge_ingress_subscription_connected",
}

func TestDashboardStructureAndTopics(t *testing.T) {
	t.Parallel()
	exprs := loadDashboard(t)
	used := map[string]bool{}
	for _, e := range exprs {
		names := metricNames(e.expr)
		if len(names) == 0 {
			t.Errorf("%s: %q names no metric", e.where, e.expr)
		}
		for _, n := range names {
			used[n] = true
		}
	}
	for topic, metric := range dashboardTopics {
		if !used[metric] {
			t.Errorf("the dashboard shows no %s (no panel reads %s)", topic, metric)
		}
	}
}
