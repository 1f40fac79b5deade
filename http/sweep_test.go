package http

import (
	"strings"
	"testing"
)

// TestEveryRouteRefusesBadAuthAndBadJSON walks the router, so routes added
// later are covered too: every account route refuses a missing, wrong or
// malformed API key, and every route that takes a JSON body refuses
// malformed JSON, wrong types and unknown fields.
func TestEveryRouteRefusesBadAuthAndBadJSON(t *testing.T) {
	t.Parallel()
	h := newHarness(t, func(o *Options) { o.SignupRatePerMinute = 1000 })
	key := h.signup("alice")
	b, _ := h.createBridge(key)
	id := str(b, "id")

	public := map[string]bool{
		"/healthz": true, "/readyz": true, "/metrics": true, "/openapi.json": true,
		"/signup": true, "/hook": true, "/instance": true, "/canary": true, "/v1/accounts": true,
		"/v1/system/identities": true,
	}
	// A body that is valid JSON but has a field of the wrong type for each
	// route that takes one.
	wrongType := map[string]string{
		"POST /signup":                               `{"key":1}`,
		"POST /hook":                                 `{"token":1}`,
		"POST /instance":                             `{"key":1}`,
		"POST /canary":                               `{"message":"text"}`,
		"POST /v1/accounts":                          `{"name":1}`,
		"POST /v1/api-keys":                          `{"name":1}`,
		"POST /v1/bridges":                           `{"name":1}`,
		"PATCH /v1/bridges/:id":                      `{"status":1}`,
		"POST /v1/bridges/:id/messages":              `{"to":1}`,
		"POST /v1/bridges/:id/webhook-secret/rotate": `{"graceSeconds":"1"}`,
	}
	// Routes whose body may be empty, and the canary, which allows unknown
	// fields because forward handlers post whole messages.
	lenient := map[string]bool{"POST /canary": true}

	checked := 0
	for _, r := range h.srv.App().GetRoutes(true) {
		if r.Method == "HEAD" {
			continue
		}
		op := r.Method + " " + r.Path
		path := strings.NewReplacer(":id", id, ":deliveryId", "1").Replace(r.Path)
		token := key
		switch {
		case strings.HasPrefix(r.Path, "/v1/admin/"):
			token = testAdminToken
			h.expect(r.Method, path, "", nil, 401, CodeUnauthorized)
			h.expect(r.Method, path, key, nil, 401, CodeUnauthorized)
		case !public[r.Path]:
			h.expect(r.Method, path, "", nil, 401, CodeUnauthorized)
			h.expect(r.Method, path, "xbk_wrong", nil, 401, CodeUnauthorized)
			h.expect(r.Method, path, "Basic abc", nil, 401, CodeUnauthorized)
		}
		if r.Method != "POST" && r.Method != "PATCH" {
			continue
		}
		body, takesBody := wrongType[op]
		if !takesBody {
			continue
		}
		checked++
		h.expect(r.Method, path, token, `{"name":`, 400, CodeInvalidJSON)
		h.expect(r.Method, path, token, `"just a string"`, 400, CodeInvalidJSON)
		h.expect(r.Method, path, token, body, 400, CodeWrongType)
		if !lenient[op] {
			h.expect(r.Method, path, token, `{"surprise":true}`, 400, CodeUnknownField)
		}
	}
	if checked != len(wrongType) {
		t.Fatalf("checked %d JSON routes, want %d: a route was renamed", checked, len(wrongType))
	}
}
