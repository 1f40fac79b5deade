package webhooktest

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/xmtpbridge/bridge/actors/webhook"
	"github.com/xmtpbridge/bridge/persistence"
)

func newSecret(t *testing.T) (string, webhook.Secret) {
	t.Helper()
	key := make([]byte, 24)
	_, _ = rand.Read(key)
	text := "whsec_" + base64.StdEncoding.EncodeToString(key)
	s, err := webhook.ParseSecret(text)
	if err != nil {
		t.Fatal(err)
	}
	return text, s
}

// post sends body to url as the bridge does, signed with secrets, and
// returns the status and the decoded answer.
func post(t *testing.T, url, id string, body any, secrets ...webhook.Secret) (int, map[string]any) {
	t.Helper()
	raw, _ := json.Marshal(body)
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	ts := time.Now().Unix()
	req.Header.Set(webhook.HeaderID, id)
	req.Header.Set(webhook.HeaderTimestamp, strconv.FormatInt(ts, 10))
	req.Header.Set(webhook.HeaderSignature, webhook.Sign(id, ts, raw, secrets...))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

// TestTargetRecordsOnlySignedRequests: a request signed with the target's
// secret is answered with the echo and recorded; one signed with another
// secret, one to an unknown hook and one the status function refuses are
// answered with an error and not recorded.
func TestTargetRecordsOnlySignedRequests(t *testing.T) {
	tg := NewTarget(t, persistence.FormatJSON)
	text, secret := newSecret(t)
	_, other := newSecret(t)
	tg.SetSecret(text)

	if code, out := post(t, tg.URL+"/x", "msg_1", map[string]any{"content": "hi"}, secret); code != 200 || out["reply"] != "echo: hi" {
		t.Fatalf("signed request: %d %v", code, out)
	}
	if code, _ := post(t, tg.URL, "msg_1", map[string]any{"content": "hi"}, secret); code != 200 {
		t.Fatalf("repeat: %d", code)
	}
	if code, _ := post(t, tg.URL, "msg_2", map[string]any{"content": "forged"}, other); code != http.StatusUnauthorized {
		t.Fatalf("request signed with another secret: %d, want 401", code)
	}
	if code, _ := post(t, tg.URL+"/hook/nobody", "msg_3", map[string]any{"content": "lost"}, secret); code != http.StatusNotFound {
		t.Fatalf("request to an unknown hook: %d, want 404", code)
	}
	hookText, hookSecret := newSecret(t)
	tg.SetHookSecret("b1", hookText)
	if code, _ := post(t, tg.URL+"/hook/b1", "msg_4", map[string]any{"content": "hooked"}, hookSecret); code != 200 {
		t.Fatalf("request to a hook: %d", code)
	}
	tg.SetStatus(func(content string) int {
		if content == "refused" {
			return http.StatusGone
		}
		return 200
	})
	if code, _ := post(t, tg.URL, "msg_5", map[string]any{"content": "refused"}, secret); code != http.StatusGone {
		t.Fatalf("refused request: %d, want 410", code)
	}

	if got := tg.Contents(); len(got) != 3 || got[0] != "hi" || got[1] != "hi" || got[2] != "hooked" {
		t.Fatalf("contents = %q", got)
	}
	if h := tg.Hits("hi"); h.Requests != 2 || len(h.IDs) != 1 || h.IDs["msg_1"] != 2 || !h.Slugs[""] {
		t.Fatalf("hits of hi = %+v", h)
	}
	if h := tg.Hits("hooked"); h.Requests != 1 || !h.Slugs["b1"] {
		t.Fatalf("hits of hooked = %+v", h)
	}
	if tg.Has("forged") || tg.Has("lost") || tg.Has("refused") {
		t.Fatal("a rejected request was recorded")
	}
	if n, texts, ids := tg.Requests(), tg.Texts(), tg.IDs(); n != 3 || texts != 2 || len(ids) != 2 {
		t.Fatalf("requests %d, texts %d, ids %v", n, texts, ids)
	}
	if bad := tg.BadSignatures(); len(bad) != 1 {
		t.Fatalf("bad signatures = %q, want one", bad)
	}
	if tg.Unknown() != 1 {
		t.Fatalf("unknown = %d, want 1", tg.Unknown())
	}
	if b := tg.FirstBody(); b["content"] != "hi" {
		t.Fatalf("first body = %v", b)
	}
}

// TestTargetSpeaksRelaycc: in the relaycc format the content is the
// message's, and the answer is {"ok": true, "data": ...}.
func TestTargetSpeaksRelaycc(t *testing.T) {
	tg := NewTarget(t, persistence.FormatRelaycc)
	text, secret := newSecret(t)
	tg.SetSecret(text)
	code, out := post(t, tg.URL, "msg_1", map[string]any{"message": map[string]any{"content": "yo"}}, secret)
	if code != 200 || out["ok"] != true || out["data"] != "echo: yo" {
		t.Fatalf("relaycc answer: %d %v", code, out)
	}
	if !tg.Has("yo") {
		t.Fatalf("contents = %q", tg.Contents())
	}
}
