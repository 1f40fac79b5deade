package main

import "testing"

// TestBuildVersionFallsBack checks the version of a binary built without
// -ldflags: it comes from the Go build information and is never empty.
func TestBuildVersionFallsBack(t *testing.T) {
	if version != "" || commit != "" {
		t.Fatalf("the test binary has a stamped version %q/%q", version, commit)
	}
	v, c := buildVersion()
	if v == "" || c == "" {
		t.Fatalf("buildVersion() = %q, %q; want non-empty fallbacks", v, c)
	}
	version, commit = "v1.0.0", "abc"
	defer func() { version, commit = "", "" }()
	if v, c := buildVersion(); v != "v1.0.0" || c != "abc" {
		t.Fatalf("stamped: %q, %q", v, c)
	}
}
