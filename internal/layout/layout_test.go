package layout

import (
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

const module = "github.com/xmtpbridge/bridge"

// TestImportDirections lists the module's packages and fails on every
// import the layout forbids, naming both packages.
func TestImportDirections(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		goTool = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	mod, edges, err := Edges(goTool, filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	if mod != module {
		t.Fatalf("listed module %q, want %q", mod, module)
	}
	if len(edges) < 50 {
		t.Fatalf("only %d imports listed: the listing missed the module's packages", len(edges))
	}
	for _, v := range Check(mod, edges) {
		t.Errorf("forbidden import: %s", v)
	}
}

// TestCheckReportsForbiddenEdges feeds the check a graph with one edge
// that breaks each rule, among edges the rules allow, and asserts that it
// reports exactly the forbidden ones, with both package paths.
func TestCheckReportsForbiddenEdges(t *testing.T) {
	p := func(s string) string { return module + "/" + s }
	allowed := []Edge{
		{From: p("cmd/bridge"), To: p("system")},
		{From: p("cmd/bridge"), To: p("smoke")},
		{From: p("cmd/bridge"), To: p("persistence")},
		{From: p("system"), To: p("actors")},
		{From: p("system"), To: p("cluster")},
		{From: p("system"), To: p("http")},
		{From: p("actors"), To: p("cluster")},
		{From: p("actors/webhook"), To: p("actors/egress")},
		{From: p("http"), To: p("actors/egress")},
		{From: p("cluster"), To: p("actors/actorpb")},
		{From: p("cluster"), To: p("persistence")},
		{From: p("xmtp/node"), To: p("persistence/migration")},
		{From: p("xmtp/api"), To: p("persistence/pgtest"), Test: true},
		{From: p("cluster"), To: p("internal/freeport"), Test: true},
		{From: p("e2e"), To: p("system"), Test: true},
		{From: p("deploy/monitoring"), To: p("http"), Test: true},
		{From: p("smoke"), To: p("system/config"), Test: true},
		{From: p("actors"), To: "github.com/asynkron/protoactor-go/cluster"},
	}
	forbidden := map[Edge]string{
		{From: p("persistence"), To: p("actors")}:              "persistence imports neither actors nor cluster",
		{From: p("xmtp/node"), To: p("cluster")}:               "xmtp imports neither actors nor cluster",
		{From: p("persistence"), To: p("cluster"), Test: true}: "persistence imports neither actors nor cluster",
		{From: p("cluster"), To: p("http")}:                    "cluster does not import http",
		{From: p("cluster"), To: p("actors")}:                  "cluster imports only actors/actorpb of actors",
		{From: p("actors/webhook"), To: p("http")}:             "actors and http are one row",
		{From: p("http"), To: p("system")}:                     "only cmd imports system",
		{From: p("actors"), To: p("system/config")}:            "only cmd imports system",
		{From: p("system"), To: p("cmd/bridge")}:               "nothing imports cmd",
		{From: p("e2e"), To: p("cmd/bridge"), Test: true}:      "nothing imports cmd",
		{From: p("http"), To: p("e2e")}:                        "nothing imports the tests of the whole",
		{From: p("internal/freeport"), To: p("xmtp/keys")}:     "imports run down",
		{From: p("util"), To: p("persistence")}:                "folder util has no rule",
	}
	edges := append([]Edge(nil), allowed...)
	for e := range forbidden {
		edges = append(edges, e)
	}
	got := map[Edge]string{}
	for _, v := range Check(module, edges) {
		got[v.Edge] = v.String()
	}
	for e, rule := range forbidden {
		msg, ok := got[e]
		if !ok {
			t.Errorf("%s → %s (test %v) not reported", e.From, e.To, e.Test)
			continue
		}
		if !strings.Contains(msg, e.From) || !strings.Contains(msg, e.To) || !strings.Contains(msg, rule) {
			t.Errorf("report %q: want both packages and the rule %q", msg, rule)
		}
	}
	for _, e := range allowed {
		if msg, ok := got[e]; ok {
			t.Errorf("allowed import reported: %s", msg)
		}
	}
}

// TestParseListFindsAForbiddenEdge runs the check on `go list -json`
// output with a fabricated forbidden import, the way the real check reads
// the module, and asserts that it is reported.
func TestParseListFindsAForbiddenEdge(t *testing.T) {
	out := `{"ImportPath": "github.com/xmtpbridge/bridge/persistence", "Module": {"Path": "github.com/xmtpbridge/bridge"},
	  "Imports": ["context", "github.com/xmtpbridge/bridge/persistence/migration"],
	  "XTestImports": ["github.com/xmtpbridge/bridge/actors"]}
	{"ImportPath": "github.com/xmtpbridge/bridge/cluster", "Module": {"Path": "github.com/xmtpbridge/bridge"},
	  "Imports": ["github.com/xmtpbridge/bridge/http", "github.com/xmtpbridge/bridge/persistence"]}`
	mod, edges, err := ParseList(strings.NewReader(out))
	if err != nil {
		t.Fatal(err)
	}
	vs := Check(mod, edges)
	if len(vs) != 2 {
		t.Fatalf("reported %v, want the two forbidden imports", vs)
	}
	want := []string{
		"github.com/xmtpbridge/bridge/cluster imports github.com/xmtpbridge/bridge/http: cluster does not import http",
		"github.com/xmtpbridge/bridge/persistence imports in its tests github.com/xmtpbridge/bridge/actors: persistence imports neither actors nor cluster",
	}
	for i, v := range vs {
		if v.String() != want[i] {
			t.Errorf("report %d = %q, want %q", i, v, want[i])
		}
	}
	if _, _, err := ParseList(strings.NewReader(`{"ImportPath": "x", "Error": {"Err": "no Go files"}}`)); err == nil {
		t.Fatal("a package go list could not load was not an error")
	}
}
