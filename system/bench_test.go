package system

import (
	"io"
	"net/http"
	"testing"

	"github.com/xmtpbridge/bridge/persistence/pgtest"
	"github.com/xmtpbridge/bridge/system/config"
)

// BenchmarkProbe measures the probes of a running dev node over real HTTP:
// /healthz is the baseline (the HTTP stack alone), /readyz adds a Postgres
// ping and the local XMTP node's own check.
func BenchmarkProbe(b *testing.B) {
	url := pgtest.NewDatabase(b, template)
	n := startNode(b, loadConfig(b, config.ModeDev, config.EnvDatabaseURL, url), io.Discard)
	client := &http.Client{}
	for _, path := range []string{"/healthz", "/readyz"} {
		b.Run(path[1:], func(b *testing.B) {
			for b.Loop() {
				resp, err := client.Get("http://" + n.HTTPAddr() + path)
				if err != nil {
					b.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					b.Fatalf("%s: %d", path, resp.StatusCode)
				}
			}
		})
	}
}
