package http

import "testing"

func TestSystemIdentitiesArePublic(t *testing.T) {
	t.Parallel()
	ids := SystemIdentities{API: "0x00000000000000000000000000000000000000a1", Canary: "0x00000000000000000000000000000000000000c2"}
	h := newHarness(t, func(o *Options) { o.Identities = ids })
	_, body := h.do("GET", "/v1/system/identities", "", nil)
	got, _ := body["identities"].(map[string]any)
	if body["ok"] != true || got["api"] != ids.API || got["canary"] != ids.Canary {
		t.Fatalf("GET /v1/system/identities = %v, want %+v", body, ids)
	}
}
