package monitoring

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"

	bridgehttp "github.com/xmtpbridge/bridge/http"
	"github.com/xmtpbridge/bridge/persistence"
	"github.com/xmtpbridge/bridge/persistence/pgtest"
	"github.com/xmtpbridge/bridge/persistence/storetest"
)

// sampleValue returns the value of the series of an exposition whose name
// and labels are exactly series (labels in the order the client writes
// them, sorted by name), or an error when it is absent.
func sampleValue(exposition, series string) (float64, error) {
	for _, line := range strings.Split(exposition, "\n") {
		if rest, ok := strings.CutPrefix(line, series+" "); ok {
			return strconv.ParseFloat(strings.TrimSpace(rest), 64)
		}
	}
	return 0, fmt.Errorf("no series %s", series)
}

// TestReadinessAndPostgresErrorMetrics serves a real store through the HTTP
// API on a real listener and checks that every scrape evaluates readiness
// (bridge_ready, bridge_dependency_up) without anyone calling /readyz, and
// that bridge_persistence_errors_total counts Postgres failures by kind but
// not expected results such as a missing row. It is not parallel: the error
// counts belong to the process, and no other store may fail meanwhile.
func TestReadinessAndPostgresErrorMetrics(t *testing.T) {
	dbURL := pgtest.NewDatabase(t, pgtest.Template{Name: "monitoring_store", Migrate: persistence.Migrate})
	ctx := context.Background()
	store := storetest.Open(t, dbURL, storetest.Sealer(t))

	var mu sync.Mutex
	var xmtpDown error
	srv, err := bridgehttp.New(bridgehttp.Options{
		Store:    store,
		Logger:   slog.New(slog.NewTextHandler(io.Discard, nil)),
		Registry: prometheus.NewRegistry(),
		NodeID:   "readiness-test",
		Ready: func(ctx context.Context) error {
			mu.Lock()
			defer mu.Unlock()
			return errors.Join(bridgehttp.DependencyDown(bridgehttp.DependencyPostgres, store.Ping(ctx)),
				bridgehttp.DependencyDown("xmtp", xmtpDown))
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	}()
	base := "http://" + ln.Addr().String()
	expect := func(what string, want map[string]float64) string {
		t.Helper()
		exposition := scrape(t, base)
		for series, v := range want {
			got, err := sampleValue(exposition, series)
			if err != nil || got != v {
				t.Errorf("%s: %s = %v (%v), want %v", what, series, got, err, v)
			}
		}
		return exposition
	}

	// Healthy; a missing row is an expected result and counts no error.
	before := expect("healthy", map[string]float64{
		"bridge_ready": 1,
		`bridge_dependency_up{dependency="postgres"}`: 1,
	})
	if _, err := store.GetAccount(ctx, "018f0000-0000-7000-8000-000000000000"); !errors.Is(err, persistence.ErrNotFound) {
		t.Fatalf("GetAccount of a missing id: %v, want ErrNotFound", err)
	}
	counts := func(exposition string) map[string]float64 {
		m := map[string]float64{}
		for _, kind := range []string{"connection", "timeout", "resources", "serialization", "query", "data", "server", "other"} {
			v, err := sampleValue(exposition, `bridge_persistence_errors_total{kind="`+kind+`"}`)
			if err != nil {
				t.Fatalf("errors of kind %s: %v", kind, err)
			}
			m[kind] = v
		}
		return m
	}
	start := counts(before)
	if after := counts(scrape(t, base)); fmt.Sprint(after) != fmt.Sprint(start) {
		t.Errorf("a missing row changed the error counts from %v to %v", start, after)
	}

	// The XMTP dependency fails: readiness and that dependency read 0 at the
	// next scrape, Postgres stays 1; once it recovers it reads 1 again.
	mu.Lock()
	xmtpDown = errors.New("dial xmtp node: connection refused")
	mu.Unlock()
	expect("xmtp down", map[string]float64{
		"bridge_ready": 0,
		`bridge_dependency_up{dependency="postgres"}`: 1,
		`bridge_dependency_up{dependency="xmtp"}`:     0,
	})
	mu.Lock()
	xmtpDown = nil
	mu.Unlock()
	expect("xmtp back", map[string]float64{
		"bridge_ready": 1,
		`bridge_dependency_up{dependency="xmtp"}`: 1,
	})

	// Postgres refuses the store: connections are cut and no new one is
	// allowed. Readiness and the postgres dependency read 0, and the
	// failed query counts as a connection error.
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	dbName := strings.TrimPrefix(u.Path, "/")
	admin, err := pgx.Connect(ctx, pgtest.ServerURL())
	if err != nil {
		t.Fatalf("connect to the server: %v", err)
	}
	defer admin.Close(ctx)
	ident := pgx.Identifier{dbName}.Sanitize()
	if _, err := admin.Exec(ctx, "ALTER DATABASE "+ident+" ALLOW_CONNECTIONS false"); err != nil {
		t.Fatal(err)
	}
	defer admin.Exec(context.Background(), "ALTER DATABASE "+ident+" ALLOW_CONNECTIONS true")
	if _, err := admin.Exec(ctx, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", dbName); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if _, err := store.GetAccount(ctx, "018f0000-0000-7000-8000-000000000000"); err == nil || errors.Is(err, persistence.ErrNotFound) {
			t.Fatalf("GetAccount with Postgres refusing the store: %v, want a failure", err)
		}
	}
	down := expect("postgres down", map[string]float64{
		"bridge_ready": 0,
		`bridge_dependency_up{dependency="postgres"}`: 0,
	})
	end := counts(down)
	if end["connection"]-start["connection"] < 3 {
		t.Errorf("three failed queries with Postgres refusing connections counted %v connection errors (all kinds before %v, after %v)",
			end["connection"]-start["connection"], start, end)
	}
	for kind, v := range end {
		if kind != "connection" && v != start[kind] {
			t.Errorf("errors of kind %s went from %v to %v; only connection errors happened", kind, start[kind], v)
		}
	}
}
