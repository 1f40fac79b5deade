package plugin

import "testing"

// A plug-in's output is customer code's answer: these decoders are the
// boundary. They never panic, and what they accept is within bounds.
func FuzzDecodeMessageResult(f *testing.F) {
	for _, s := range []string{`{"action":"forward"}`, `{"action":"reply","content":"hi"}`, `{"action":"drop","reason":"spam"}`,
		`{"action":"forward","content":"x","headers":{"a":"b"}}`, `{"action":"reply"}`, `{"action":"explode"}`, `[]`, `null`,
		`{"action": forward`, "\x00\xff", `{"action":"forward","headers":{"webhook-signature":"v1,forged"}}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := DecodeMessageResult(b)
		if err != nil {
			return
		}
		if r.Action != "forward" && r.Action != "drop" && r.Action != "reply" {
			t.Fatalf("accepted action %q", r.Action)
		}
		if r.Action == "reply" && (r.Content == nil || *r.Content == "") {
			t.Fatal("accepted a reply without content")
		}
		if r.Content != nil && len(*r.Content) > maxReplyBytes || len(r.Headers) > 32 {
			t.Fatal("accepted output over its bounds")
		}
	})
}

func FuzzDecodeResponseResult(f *testing.F) {
	for _, s := range []string{`{"reply":"It is 21°C."}`, `{"reply":null}`, `{}`, `{"reply":3}`, `{"reply":"a","x":1}`, `"reply"`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := DecodeResponseResult(b)
		if err != nil {
			return
		}
		if r.Reply != nil && len(*r.Reply) > maxReplyBytes {
			t.Fatal("accepted a reply over its bound")
		}
	})
}

func FuzzDecodeSendResult(f *testing.F) {
	for _, s := range []string{`{"action":"send"}`, `{"action":"send","content":"x"}`, `{"action":"refuse","reason":"no"}`,
		`{"action":"send","content":""}`, `{"action":"publish"}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := DecodeSendResult(b)
		if err != nil {
			return
		}
		if r.Action != "send" && r.Action != "refuse" {
			t.Fatalf("accepted action %q", r.Action)
		}
		if r.Content != nil && (*r.Content == "" || len(*r.Content) > maxReplyBytes) {
			t.Fatal("accepted content out of bounds")
		}
	})
}
