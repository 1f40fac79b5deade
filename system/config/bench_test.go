package config

import (
	"github.com/xmtpbridge/bridge/internal/testkit"
	"testing"
)

// BenchmarkLoad measures reading and checking a full node configuration.
func BenchmarkLoad(b *testing.B) {
	lookup := env(
		EnvDatabaseURL, "postgres://bridge:pw@db:5432/bridge",
		EnvMasterKey, testkit.MasterKey,
		EnvMasterKeysPrevious, "k0:"+testkit.MasterKey,
		EnvAdminToken, testAdmin,
		EnvSignupKey, testSignup,
		EnvXMTPNode, "xmtp.example.net:5556",
	)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Load(lookup, WithHostname(fixedHost)); err != nil {
			b.Fatal(err)
		}
	}
}
