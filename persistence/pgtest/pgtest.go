// Package pgtest gives each test its own Postgres database, cloned from a
// template database that is migrated once per test process.
//
// Cloning a template is much faster than migrating, so every test starts
// from a clean, fully migrated schema without paying for the migrations.
// The server comes from TEST_DATABASE_URL, then DATABASE_URL, then the
// machine's default Postgres at 127.0.0.1:5432.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"hash/fnv"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// DefaultServerURL is the Postgres that tests use when no variable names one.
const DefaultServerURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

// Template names a template database and the migration that builds it.
type Template struct {
	// Name is a short identifier made of lowercase letters, digits and
	// underscores; it becomes part of the database names.
	Name string
	// Migrate brings the empty database at url up to the current schema.
	Migrate func(ctx context.Context, url string) error
}

// ServerURL returns the URL of the Postgres server the tests use.
func ServerURL() string {
	for _, name := range []string{"TEST_DATABASE_URL", "DATABASE_URL"} {
		if v := os.Getenv(name); v != "" {
			return v
		}
	}
	return DefaultServerURL
}

var (
	mu       sync.Mutex
	prepared = map[string]error{}
)

// NewDatabase creates a database cloned from tmpl, returns its URL and drops
// it when the test ends. The test fails at once if Postgres is unreachable:
// a database test that cannot reach its database must not pass.
func NewDatabase(t testing.TB, tmpl Template) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	server := ServerURL()
	scope := tmpl.Name + "_" + checkoutTag()
	tmplDB := "tmpl_" + scope
	if err := prepare(ctx, server, tmplDB, scope, tmpl); err != nil {
		t.Fatalf("pgtest: prepare template %s: %v", tmplDB, err)
	}

	name := fmt.Sprintf("t_%s_%d_%s", scope, time.Now().Unix(), randomSuffix())
	err := withLock(ctx, server, tmplDB, func(conn *pgx.Conn) error {
		_, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()+" TEMPLATE "+pgx.Identifier{tmplDB}.Sanitize())
		return err
	})
	if err != nil {
		t.Fatalf("pgtest: clone %s: %v", tmplDB, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		conn, err := pgx.Connect(ctx, server)
		if err != nil {
			t.Errorf("pgtest: drop %s: %v", name, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
			t.Errorf("pgtest: drop %s: %v", name, err)
		}
	})
	u, err := WithDatabase(server, name)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	return u
}

// WithDatabase returns server with its database name replaced by name.
func WithDatabase(server, name string) (string, error) {
	u, err := url.Parse(server)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return "", fmt.Errorf("parse server url: want postgres://user@host:port/db, got a value that is not one")
	}
	u.Path = "/" + name
	return u.String(), nil
}

// prepare rebuilds the template once per process. Other test processes may
// use the same template at the same moment, so the rebuild and every clone
// happen under one advisory lock per template.
func prepare(ctx context.Context, server, tmplDB, scope string, tmpl Template) error {
	mu.Lock()
	defer mu.Unlock()
	if err, ok := prepared[tmplDB]; ok {
		return err
	}
	err := withLock(ctx, server, tmplDB, func(conn *pgx.Conn) error {
		if err := sweepStale(ctx, conn, scope, time.Now().Add(-staleAfter)); err != nil {
			return err
		}
		quoted := pgx.Identifier{tmplDB}.Sanitize()
		if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+quoted+" WITH (FORCE)"); err != nil {
			return fmt.Errorf("drop old template: %w", err)
		}
		if _, err := conn.Exec(ctx, "CREATE DATABASE "+quoted); err != nil {
			return fmt.Errorf("create template: %w", err)
		}
		u, err := WithDatabase(server, tmplDB)
		if err != nil {
			return err
		}
		if err := tmpl.Migrate(ctx, u); err != nil {
			return fmt.Errorf("migrate template: %w", err)
		}
		return nil
	})
	prepared[tmplDB] = err
	return err
}

// staleAfter is the age past which a test database is taken to belong to a
// test process that was killed before its cleanup ran. The whole suite
// runs in far less time, so no live test loses its database.
const staleAfter = time.Hour

// sweepStale drops the databases of template scope that were created before
// cutoff. Their names carry their creation time in unix seconds.
func sweepStale(ctx context.Context, conn *pgx.Conn, scope string, cutoff time.Time) error {
	prefix := "t_" + scope + "_"
	rows, err := conn.Query(ctx, "SELECT datname FROM pg_database WHERE starts_with(datname, $1)", prefix)
	if err != nil {
		return fmt.Errorf("list old test databases: %w", err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fmt.Errorf("list old test databases: %w", err)
	}
	for _, db := range names {
		stamp, _, ok := strings.Cut(strings.TrimPrefix(db, prefix), "_")
		created, err := strconv.ParseInt(stamp, 10, 64)
		if !ok || err != nil || !time.Unix(created, 0).Before(cutoff) {
			continue
		}
		if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{db}.Sanitize()+" WITH (FORCE)"); err != nil {
			return fmt.Errorf("drop old test database %s: %w", db, err)
		}
	}
	return nil
}

// checkoutTag names the checkout that runs the tests: six hex digits of a
// hash of its module root. Two checkouts of different revisions may test
// against one Postgres at the same time, and each must clone a template
// built from its own migrations, not the other's.
func checkoutTag() string {
	checkoutOnce.Do(func() {
		dir, err := os.Getwd()
		if err != nil {
			dir = "unknown"
		}
		for d := dir; ; d = filepath.Dir(d) {
			if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
				dir = d
				break
			}
			if filepath.Dir(d) == d {
				break
			}
		}
		h := fnv.New32a()
		h.Write([]byte(dir))
		checkout = fmt.Sprintf("%06x", h.Sum32()&0xffffff)
	})
	return checkout
}

var (
	checkoutOnce sync.Once
	checkout     string
)

func withLock(ctx context.Context, server, key string, fn func(*pgx.Conn) error) error {
	conn, err := pgx.Connect(ctx, server)
	if err != nil {
		return fmt.Errorf("connect to %s (start Postgres, or set TEST_DATABASE_URL): %w", redact(server), err)
	}
	defer conn.Close(context.Background())
	h := fnv.New64a()
	h.Write([]byte("pgtest:" + key))
	id := int64(h.Sum64())
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", id); err != nil {
		return fmt.Errorf("lock template: %w", err)
	}
	defer conn.Exec(context.Background(), "SELECT pg_advisory_unlock($1)", id)
	return fn(conn)
}

func randomSuffix() string {
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

// redact hides the password of a database URL so it can be shown in errors.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparseable database url)"
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	return u.String()
}
