package webhook

import (
	"bytes"
	"encoding/json"
	"fmt"
	"mime"
	"strings"
	"testing"
	"unicode/utf8"
)

// referenceJSONReply is DecodeJSONReply as it was before its fast paths
// (jsonMediaType, plainJSONReply): every body through mime and
// encoding/json. The fast paths must answer as it does.
func referenceJSONReply(contentType string, body []byte) (string, bool, error) {
	media, _, _ := mime.ParseMediaType(contentType)
	isJSON := media == "application/json" || strings.HasSuffix(media, "+json")
	trimmed := bytes.TrimSpace(body)
	if !isJSON && media == "" && len(trimmed) > 0 && trimmed[0] == '{' && json.Valid(trimmed) {
		isJSON = true
	}
	if !isJSON {
		if len(body) == 0 {
			return "", false, nil
		}
		if !utf8.Valid(body) {
			return "", false, fmt.Errorf("decode reply: %w: text is not UTF-8", ErrBadReply)
		}
		return string(body), true, nil
	}
	if len(trimmed) == 0 {
		return "", false, nil
	}
	var r struct {
		Reply *json.RawMessage `json:"reply"`
	}
	if err := json.Unmarshal(trimmed, &r); err != nil {
		return "", false, fmt.Errorf("decode reply: %w: not a JSON object", ErrBadReply)
	}
	if r.Reply == nil || string(bytes.TrimSpace(*r.Reply)) == "null" {
		return "", false, nil
	}
	var s string
	if err := json.Unmarshal(*r.Reply, &s); err != nil {
		return "", false, fmt.Errorf("decode reply: %w: reply is not a string", ErrBadReply)
	}
	return s, true, nil
}

// sameJSONReply fails t unless DecodeJSONReply and referenceJSONReply
// give ct and body the same reply, presence and error text.
func sameJSONReply(t *testing.T, ct string, body []byte) {
	t.Helper()
	reply, has, err := DecodeJSONReply(ct, body)
	wantReply, wantHas, wantErr := referenceJSONReply(ct, body)
	if reply != wantReply || has != wantHas || fmt.Sprint(err) != fmt.Sprint(wantErr) {
		t.Fatalf("DecodeJSONReply(%q, %q) = %q, %v, %v; encoding/json gives %q, %v, %v", ct, body, reply, has, err, wantReply, wantHas, wantErr)
	}
}

var plainReplyBodies = []string{
	`{"reply":"hi"}`, `{"reply":""}`, " \n{\"reply\":\"echo: bridge-peak 000123\"}\n", `{"reply":"héllo ✓"}`,
	`{"reply":"a\u2028b"}`, "{\"reply\":\"a\u2028b\"}", `{"reply":"tab\there"}`, "{\"reply\":\"tab\there\"}",
	"{\"reply\":\"bad \xff utf8\"}", "{\"reply\":\"cut \xe2\x9c\"}", `{"reply":"q\"uote"}`, `{"reply":"back\\slash"}`,
	`{"reply":"a","reply":"b"}`, `{"reply":"a"} {"reply":"b"}`, `{"reply":"a"}}`, `{"reply":"a"`, `{"Reply":"upper"}`,
	`{"reply":"x","other":1}`, `{"other":1,"reply":"x"}`, `{"reply": "spaced"}`, `{"reply":null}`, `{"reply":5}`,
	`{"reply":"\u0000"}`, "{\"reply\":\"nul\x00\"}", `{"reply":"<b>&amp;</b>"}`, `{"reply":"}"}`, `{"reply":"\"}`, `{}`, `null`, `[]`,
}

// TestDecodeJSONReplyFastPathsAgreeWithEncodingJSON holds the fast paths to
// encoding/json on plain replies and on every near miss of their shape:
// escapes, quotes, control characters, invalid UTF-8, duplicate and
// differently cased keys, trailing data, under every usual content type.
func TestDecodeJSONReplyFastPathsAgreeWithEncodingJSON(t *testing.T) {
	for _, ct := range []string{"application/json", "application/json; charset=utf-8", "application/json; charset=UTF-8",
		"Application/JSON", "application/problem+json", "", "text/plain", "application/json;charset=utf-8"} {
		for _, body := range plainReplyBodies {
			sameJSONReply(t, ct, []byte(body))
		}
	}
}

// FuzzDecodeJSONReplyAgreesWithEncodingJSON is the same check on any
// reply text inside the usual shape, and on any body.
func FuzzDecodeJSONReplyAgreesWithEncodingJSON(f *testing.F) {
	for _, b := range plainReplyBodies {
		f.Add("application/json", b)
	}
	f.Fuzz(func(t *testing.T, ct, text string) {
		sameJSONReply(t, ct, []byte(`{"reply":"`+text+`"}`))
		sameJSONReply(t, ct, []byte(text))
	})
}

// TestDecodeJSONReplyOfAPlainReplyAllocatesOnce checks that the usual
// answer costs one allocation, its string, and not encoding/json's
// decoding state.
func TestDecodeJSONReplyOfAPlainReplyAllocatesOnce(t *testing.T) {
	body := []byte(`{"reply":"echo: bridge-peak 000123"}` + "\n")
	for _, ct := range []string{"application/json", "application/json; charset=utf-8"} {
		if n := testing.AllocsPerRun(100, func() { _, _, _ = DecodeJSONReply(ct, body) }); n > 1 {
			t.Errorf("DecodeJSONReply(%q) of a plain reply: %.0f allocations, want 1", ct, n)
		}
	}
}
