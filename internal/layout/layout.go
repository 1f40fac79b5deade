// Package layout checks the import directions between the top-level
// folders of the module, the rules each folder's doc.go states:
//
//		cmd → system → {http, cluster, actors, smoke} → {persistence, xmtp} → internal
//
//	  - An import runs down that chain, never up: persistence and xmtp import
//	    neither actors nor cluster (nor http, system or cmd), and nothing
//	    imports cmd.
//	  - system is imported only by cmd, its parent; the tests of the
//	    deployment and end-to-end packages (deploy, e2e) and of smoke and cmd
//	    may import it too, to start a node in-process.
//	  - Between the folders of one row: http may import actors (the egress
//	    policy, the webhook client's options), actors imports cluster (the
//	    runtime is the cluster's host and talks to it through its own port,
//	    actors.Cluster), and cluster imports actors/actorpb only, the wire
//	    messages of its node actor. cluster never imports http, and nothing
//	    else crosses the row. persistence and xmtp may import each other's
//	    leaves (migrations, test databases), as the local XMTP node stores in
//	    Postgres.
//	  - internal holds leaves for the tests (free ports, the test kit
//	    internal/testkit, this check) and imports nothing above it. The
//	    parts of the test kit that need an upper layer live in that layer:
//	    persistence/pgtest and persistence/storetest, actors/webhook/webhooktest.
//	  - deploy and e2e are tests of the whole: they may import any folder
//	    but cmd, and nothing imports them.
//
// A folder the rules do not name is reported too, so a new top-level
// folder comes with its rule. Edges come from `go list -json ./...`: each
// package's imports, and those of its tests.
package layout

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"sort"
	"strings"
)

// Edge is one import: package From imports package To. Both are import
// paths; Test marks an import of From's test files only.
type Edge struct {
	From, To string
	Test     bool
}

// Violation is an edge the rules forbid, and the rule it breaks.
type Violation struct {
	Edge
	Rule string
}

func (v Violation) String() string {
	kind := "imports"
	if v.Test {
		kind = "imports in its tests"
	}
	return fmt.Sprintf("%s %s %s: %s", v.From, kind, v.To, v.Rule)
}

// rank orders the layered folders: an import goes to a higher number, or
// stays in its row under the peer rules.
var rank = map[string]int{
	"cmd":         0,
	"system":      1,
	"http":        2,
	"cluster":     2,
	"actors":      2,
	"smoke":       2,
	"persistence": 3,
	"xmtp":        3,
	"internal":    4,
}

// wholeTests are folders of tests of the whole system.
var wholeTests = map[string]bool{"deploy": true, "e2e": true}

// peers are the imports allowed between two folders of one row, by
// folder; the value, when not empty, is the one package To may be.
var peers = map[[2]string]string{
	{"http", "actors"}:      "",
	{"actors", "cluster"}:   "",
	{"cluster", "actors"}:   "actors/actorpb",
	{"persistence", "xmtp"}: "",
	{"xmtp", "persistence"}: "",
}

// Check returns every edge of edges that the rules forbid, in order of
// From and To. module is the module path; edges to other modules are not
// checked.
func Check(module string, edges []Edge) []Violation {
	var out []Violation
	for _, e := range edges {
		from, okFrom := folder(module, e.From)
		to, okTo := folder(module, e.To)
		if !okFrom || !okTo || from == to {
			continue
		}
		if rule := forbidden(module, e, from, to); rule != "" {
			out = append(out, Violation{Edge: e, Rule: rule})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].From != out[j].From {
			return out[i].From < out[j].From
		}
		if out[i].To != out[j].To {
			return out[i].To < out[j].To
		}
		return !out[i].Test && out[j].Test
	})
	return out
}

// forbidden returns the rule the edge e, from folder from to folder to,
// breaks, or "" when it keeps them.
func forbidden(module string, e Edge, from, to string) string {
	if to == "cmd" {
		return "nothing imports cmd"
	}
	if wholeTests[to] {
		return "nothing imports the tests of the whole (" + to + ")"
	}
	if wholeTests[from] {
		return ""
	}
	rf, knownFrom := rank[from]
	rt, knownTo := rank[to]
	if !knownFrom {
		return "folder " + from + " has no rule in internal/layout"
	}
	if !knownTo {
		return "folder " + to + " has no rule in internal/layout"
	}
	if to == "system" {
		if from == "cmd" || (e.Test && from == "smoke") {
			return ""
		}
		return "only cmd imports system"
	}
	switch {
	case rf < rt:
		return ""
	case rf > rt:
		if to == "actors" || to == "cluster" {
			return from + " imports neither actors nor cluster"
		}
		return "imports run down cmd → system → {http, cluster, actors, smoke} → {persistence, xmtp} → internal, not up"
	}
	only, ok := peers[[2]string{from, to}]
	if ok && (only == "" || e.To == module+"/"+only || strings.HasPrefix(e.To, module+"/"+only+"/")) {
		return ""
	}
	if from == "cluster" && to == "http" {
		return "cluster does not import http"
	}
	if ok {
		return from + " imports only " + only + " of " + to
	}
	return from + " and " + to + " are one row: " + from + " does not import " + to
}

// folder returns the top-level folder of the module that holds the
// package path, and false for a package of another module.
func folder(module, path string) (string, bool) {
	rest, ok := strings.CutPrefix(path, module+"/")
	if !ok {
		return "", false
	}
	top, _, _ := strings.Cut(rest, "/")
	return top, true
}

// listed is the part of `go list -json` that Edges reads.
type listed struct {
	ImportPath   string
	Module       *struct{ Path string }
	Imports      []string
	TestImports  []string
	XTestImports []string
	Error        *struct{ Err string }
}

// Edges lists the module in dir with `go list -json ./...` (goTool is the
// go command) and returns its module path and every import of its
// packages and their tests.
func Edges(goTool, dir string) (string, []Edge, error) {
	cmd := exec.Command(goTool, "list", "-e", "-json", "./...")
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	raw, err := cmd.Output()
	if err != nil {
		return "", nil, fmt.Errorf("list packages in %s: %w: %s", dir, err, strings.TrimSpace(stderr.String()))
	}
	return ParseList(bytes.NewReader(raw))
}

// ParseList reads the JSON stream of `go list -json` and returns the
// module path and the edges.
func ParseList(r io.Reader) (string, []Edge, error) {
	dec := json.NewDecoder(r)
	module := ""
	var edges []Edge
	for {
		var p listed
		err := dec.Decode(&p)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return "", nil, fmt.Errorf("decode go list output: %w", err)
		}
		if p.Error != nil {
			return "", nil, fmt.Errorf("list package %s: %s", p.ImportPath, p.Error.Err)
		}
		if p.Module != nil && module == "" {
			module = p.Module.Path
		}
		for _, to := range p.Imports {
			edges = append(edges, Edge{From: p.ImportPath, To: to})
		}
		for _, to := range append(append([]string(nil), p.TestImports...), p.XTestImports...) {
			edges = append(edges, Edge{From: p.ImportPath, To: to, Test: true})
		}
	}
	if module == "" {
		return "", nil, errors.New("decode go list output: no package of a module")
	}
	return module, edges, nil
}
