package http

import (
	"encoding/json"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/xmtpbridge/bridge/internal/testkit"
)

var pathParam = regexp.MustCompile(`:([A-Za-z]+)`)

// TestOpenAPIMatchesRoutes checks the document against the router both
// ways: every route is documented and every documented operation is routed.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	var doc struct {
		OpenAPI string                                `json:"openapi"`
		Paths   map[string]map[string]json.RawMessage `json:"paths"`
	}
	status, m := h.do("GET", "/openapi.json", "", nil)
	if status != 200 || m["openapi"] == nil {
		t.Fatalf("served document has no openapi field")
	}
	if err := json.Unmarshal(openAPIDocument, &doc); err != nil {
		t.Fatalf("openapi.json: %v", err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.") {
		t.Fatalf("openapi version %q", doc.OpenAPI)
	}
	documented := map[string]bool{}
	for path, ops := range doc.Paths {
		for method := range ops {
			if method == "parameters" {
				continue
			}
			documented[strings.ToUpper(method)+" "+path] = true
		}
	}
	routed := map[string]bool{}
	for _, r := range h.srv.App().GetRoutes(true) {
		if r.Method == "HEAD" {
			continue // Fiber adds HEAD for every GET.
		}
		routed[r.Method+" "+pathParam.ReplaceAllString(r.Path, "{$1}")] = true
	}
	var missing, stale []string
	for op := range routed {
		if !documented[op] {
			missing = append(missing, op)
		}
	}
	for op := range documented {
		if !routed[op] {
			stale = append(stale, op)
		}
	}
	sort.Strings(missing)
	sort.Strings(stale)
	if len(missing) > 0 {
		t.Errorf("routes missing from openapi.json: %v", missing)
	}
	if len(stale) > 0 {
		t.Errorf("openapi.json documents operations with no route: %v", stale)
	}
	if len(routed) < 20 {
		t.Errorf("only %d routes found; the router listing is not what this test expects", len(routed))
	}
}

// TestOpenAPIReferencesResolve checks that every $ref names a schema the
// document defines and that operation ids are unique.
func TestOpenAPIReferencesResolve(t *testing.T) {
	t.Parallel()
	var doc map[string]any
	if err := json.Unmarshal(openAPIDocument, &doc); err != nil {
		t.Fatal(err)
	}
	schemas := doc["components"].(map[string]any)["schemas"].(map[string]any)
	var walk func(v any)
	refs := 0
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			if ref, ok := x["$ref"].(string); ok {
				refs++
				name, found := strings.CutPrefix(ref, "#/components/schemas/")
				if !found || schemas[name] == nil {
					t.Errorf("unresolved $ref %s", ref)
				}
			}
			for _, e := range x {
				walk(e)
			}
		case []any:
			for _, e := range x {
				walk(e)
			}
		}
	}
	walk(doc)
	if refs == 0 {
		t.Fatal("no $ref found; the walk is broken")
	}
	ids := map[string]string{}
	for path, ops := range doc["paths"].(map[string]any) {
		for method, op := range ops.(map[string]any) {
			o := op.(map[string]any)
			id, _ := o["operationId"].(string)
			if id == "" {
				t.Errorf("%s %s has no operationId", method, path)
			}
			if other, dup := ids[id]; dup {
				t.Errorf("operationId %s used by %s and %s %s", id, other, method, path)
			}
			ids[id] = method + " " + path
			if o["responses"] == nil {
				t.Errorf("%s %s has no responses", method, path)
			}
			for _, m := range pathParam.FindAllStringSubmatch(strings.NewReplacer("{", ":", "}", "").Replace(path), -1) {
				found := false
				params, _ := o["parameters"].([]any)
				for _, p := range params {
					pm := p.(map[string]any)
					if pm["in"] == "path" && pm["name"] == m[1] {
						found = true
					}
				}
				if !found {
					t.Errorf("%s %s does not describe its path parameter %s", method, path, m[1])
				}
			}
		}
	}
}

// TestViewsMatchTheOpenAPIDocument: the JSON fields of each response view
// are exactly the properties of its schema in openapi.json, both ways, so
// a field added to a view without its documentation (or the reverse)
// fails here. internal/apiclient checks its own types against the same
// schemas, which keeps the CLI's mirror of these views in step.
func TestViewsMatchTheOpenAPIDocument(t *testing.T) {
	t.Parallel()
	testkit.MatchSchemas(t, openAPIDocument, map[string]any{
		"Account": accountView{}, "APIKey": apiKeyView{}, "Forward": forwardView{}, "Bridge": bridgeView{},
		"Subscriptions": subscriptionsView{}, "Delivery": deliveryView{}, "DeliveryAttempt": attemptView{},
		"SentMessage": sentMessageView{}, "EndpointHealth": endpointHealthView{},
	})
}
