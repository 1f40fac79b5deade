package apiclient

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzDecodeError feeds any answer body to DecodeError: it never panics,
// and the code and message it returns are bounded and printable.
func FuzzDecodeError(f *testing.F) {
	for _, s := range []string{
		`{"ok":false,"error":"bridge not found","code":"not_found"}`,
		`{"error":{"code":"rate_limited","message":"slow down"}}`,
		`{"error":null}`, `{"error":[1,2]}`, `[]`, `null`, ``, "\x1b[2J", `{"error":"\u0000"}`,
		`{"error":"` + strings.Repeat("é", 600) + `","code":"` + strings.Repeat("c", 100) + `"}`,
	} {
		f.Add(500, []byte(s))
	}
	f.Fuzz(func(t *testing.T, status int, body []byte) {
		e := DecodeError(status, body)
		for _, s := range []string{e.Code, e.Message} {
			if s == "" {
				t.Fatalf("empty field in %+v", e)
			}
			for _, r := range s {
				if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
					t.Fatalf("control character %U in %q", r, s)
				}
			}
		}
		if utf8.RuneCountInString(e.Code) > 65 || utf8.RuneCountInString(e.Message) > 501 {
			t.Fatalf("unbounded error: %d, %d runes", utf8.RuneCountInString(e.Code), utf8.RuneCountInString(e.Message))
		}
	})
}
