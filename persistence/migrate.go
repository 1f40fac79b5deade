package persistence

import (
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"sort"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// migrationLockID is the advisory lock key that serialises migrations of
// nodes that start together against the same database.
const migrationLockID int64 = 0x6272696467656d67 // "bridgemg"

// ErrMigrationChanged means a migration file differs from the one that was
// applied to the database. Applied migrations must never be edited; add a
// new numbered file instead.
var ErrMigrationChanged = errors.New("applied migration was changed")

// migration is one numbered SQL file.
type migration struct {
	version int
	name    string
	sql     string
}

// checksum is the SHA-256 of the file, recorded when it is applied.
func (m migration) checksum() string {
	h := sha256.Sum256([]byte(m.sql))
	return hex.EncodeToString(h[:])
}

// Migrate brings the database at databaseURL up to the current schema. Each
// numbered file under migrations/ runs once, in order, in its own
// transaction, and is recorded in schema_migrations. A session advisory
// lock serialises concurrent callers, so nodes starting together are safe.
// Running it on an up-to-date database changes nothing.
func Migrate(ctx context.Context, databaseURL string) error {
	migrations, err := loadMigrations()
	if err != nil {
		return err
	}
	conn, err := pgx.Connect(ctx, databaseURL)
	if err != nil {
		return fmt.Errorf("connect to database: %w", err)
	}
	defer conn.Close(context.Background())

	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", migrationLockID); err != nil {
		return fmt.Errorf("take migration lock: %w", err)
	}
	defer conn.Exec(context.Background(), "SELECT pg_advisory_unlock($1)", migrationLockID)

	if _, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    integer     PRIMARY KEY,
		name       text        NOT NULL,
		applied_at timestamptz NOT NULL DEFAULT now(),
		checksum   text
	)`); err != nil {
		return fmt.Errorf("create schema_migrations: %w", err)
	}
	if _, err := conn.Exec(ctx, `ALTER TABLE schema_migrations ADD COLUMN IF NOT EXISTS checksum text`); err != nil {
		return fmt.Errorf("upgrade schema_migrations: %w", err)
	}

	// applied maps each applied version to the checksum of the file that
	// applied it; a file changed after it ran is an error, not a no-op.
	applied := map[int]string{}
	rows, err := conn.Query(ctx, "SELECT version, coalesce(checksum, '') FROM schema_migrations")
	if err != nil {
		return fmt.Errorf("read schema_migrations: %w", err)
	}
	for rows.Next() {
		var (
			v   int32
			sum string
		)
		if err := rows.Scan(&v, &sum); err != nil {
			rows.Close()
			return fmt.Errorf("read schema_migrations: %w", err)
		}
		applied[int(v)] = sum
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read schema_migrations: %w", err)
	}

	for _, m := range migrations {
		if sum, ok := applied[m.version]; ok {
			if sum != "" && sum != m.checksum() {
				return fmt.Errorf("check migration %s: %w", m.name, ErrMigrationChanged)
			}
			continue
		}
		err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, m.sql); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
				m.version, m.name, m.checksum())
			return err
		})
		if err != nil {
			return fmt.Errorf("apply migration %s: %w", m.name, err)
		}
	}
	return nil
}

// loadMigrations reads the embedded files named NNNN_description.sql and
// returns them in version order.
func loadMigrations() ([]migration, error) {
	entries, err := fs.ReadDir(migrationFiles, "migrations")
	if err != nil {
		return nil, fmt.Errorf("read migrations: %w", err)
	}
	var out []migration
	seen := map[int]string{}
	for _, e := range entries {
		name := e.Name()
		prefix, _, ok := strings.Cut(name, "_")
		if !ok || !strings.HasSuffix(name, ".sql") {
			return nil, fmt.Errorf("read migration %s: name is not NNNN_description.sql", name)
		}
		version, err := strconv.Atoi(prefix)
		if err != nil || version <= 0 {
			return nil, fmt.Errorf("read migration %s: name does not start with a positive number", name)
		}
		if other, dup := seen[version]; dup {
			return nil, fmt.Errorf("read migration %s: version %d already used by %s", name, version, other)
		}
		seen[version] = name
		body, err := migrationFiles.ReadFile("migrations/" + name)
		if err != nil {
			return nil, fmt.Errorf("read migration %s: %w", name, err)
		}
		out = append(out, migration{version: version, name: name, sql: string(body)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].version < out[j].version })
	return out, nil
}
