package main

import (
	"testing"
)

// FuzzParseLogin feeds any config file to parseLogin: it never panics, and
// what it refuses it refuses with an error that does not quote the file,
// which may hold an API key.
func FuzzParseLogin(f *testing.F) {
	for _, s := range []string{
		`{"api":"http://127.0.0.1:8080","apiKey":"xbk_abc"}`, `{}`, `null`, `[]`, ``, `{"api":1}`,
		`{"api":"x","apiKey":"xbk_secret_in_a_broken_file"`, "\xff\xfe",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		_, err := parseLogin(data, "/config.json")
		if err != nil && len(data) > 8 && containsBytes(err.Error(), data) {
			t.Fatalf("the error quotes the file: %v", err)
		}
	})
}

func containsBytes(s string, b []byte) bool {
	for i := 0; i+len(b) <= len(s); i++ {
		if s[i:i+len(b)] == string(b) {
			return true
		}
	}
	return false
}
