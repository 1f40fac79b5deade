package keys

import (
	"testing"
	"time"
)

func BenchmarkVerifyAuthToken(b *testing.B) {
	bundle := mustGenerate(b)
	now := time.Now()
	tok, _ := bundle.AuthToken(now)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := VerifyAuthToken(tok, now); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerifyBundle(b *testing.B) {
	pub := mustGenerate(b).PublicBundle()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := VerifyBundle(pub); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkGenerate(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		mustGenerate(b)
	}
}
