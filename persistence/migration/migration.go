// Package migration applies embedded, numbered SQL migrations to Postgres.
// The bridge schema (persistence) and the local XMTP node's schema
// (xmtp/node) both use it, each with its own table of applied versions and
// its own advisory lock, so the two can share a database or live apart.
package migration

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
)

// ErrChanged means a migration file differs from the one that was applied
// to the database. Applied migrations must never be edited; add a new
// numbered file instead.
var ErrChanged = errors.New("applied migration was changed")

// Set is one schema's migrations: files named NNNN_description.sql in Dir
// of FS, recorded in Table once applied, serialised by the advisory lock
// LockID.
type Set struct {
	FS     fs.FS
	Dir    string
	Table  string
	LockID int64
}

// File is one numbered migration.
type File struct {
	Version int
	Name    string
	SQL     string
}

// Checksum is the SHA-256 of the file, recorded when it is applied.
func (f File) Checksum() string {
	h := sha256.Sum256([]byte(f.SQL))
	return hex.EncodeToString(h[:])
}

// Files reads the set's files and returns them in version order.
func (s Set) Files() ([]File, error) {
	entries, err := fs.ReadDir(s.FS, s.Dir)
	if err != nil {
		return nil, fmt.Errorf("read migrations: %w", err)
	}
	var out []File
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
		body, err := fs.ReadFile(s.FS, path.Join(s.Dir, name))
		if err != nil {
			return nil, fmt.Errorf("read migration %s: %w", name, err)
		}
		out = append(out, File{Version: version, Name: name, SQL: string(body)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Version < out[j].Version })
	return out, nil
}

// Apply brings the database at databaseURL up to the set's current schema.
// Each file runs once, in order, in its own transaction, and is recorded
// with its checksum. A session advisory lock serialises concurrent callers,
// so nodes starting together are safe. Running it on an up-to-date
// database changes nothing; a recorded file whose checksum no longer
// matches is ErrChanged.
func (s Set) Apply(ctx context.Context, databaseURL string) error {
	files, err := s.Files()
	if err != nil {
		return err
	}
	conn, err := pgx.Connect(ctx, databaseURL)
	if err != nil {
		return fmt.Errorf("connect to database: %w", err)
	}
	defer conn.Close(context.Background())

	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", s.LockID); err != nil {
		return fmt.Errorf("take migration lock: %w", err)
	}
	defer conn.Exec(context.Background(), "SELECT pg_advisory_unlock($1)", s.LockID)

	table := pgx.Identifier{s.Table}.Sanitize()
	if _, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS `+table+` (
		version    integer     PRIMARY KEY,
		name       text        NOT NULL,
		applied_at timestamptz NOT NULL DEFAULT now(),
		checksum   text
	)`); err != nil {
		return fmt.Errorf("create %s: %w", s.Table, err)
	}
	// Tables made before checksums were recorded gain the column; their
	// rows have none and are trusted.
	if _, err := conn.Exec(ctx, `ALTER TABLE `+table+` ADD COLUMN IF NOT EXISTS checksum text`); err != nil {
		return fmt.Errorf("upgrade %s: %w", s.Table, err)
	}

	applied := map[int]string{}
	rows, err := conn.Query(ctx, "SELECT version, coalesce(checksum, '') FROM "+table)
	if err != nil {
		return fmt.Errorf("read %s: %w", s.Table, err)
	}
	for rows.Next() {
		var (
			v   int32
			sum string
		)
		if err := rows.Scan(&v, &sum); err != nil {
			rows.Close()
			return fmt.Errorf("read %s: %w", s.Table, err)
		}
		applied[int(v)] = sum
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read %s: %w", s.Table, err)
	}

	for _, f := range files {
		if sum, ok := applied[f.Version]; ok {
			if sum != "" && sum != f.Checksum() {
				return fmt.Errorf("check migration %s: %w", f.Name, ErrChanged)
			}
			continue
		}
		err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, f.SQL); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, "INSERT INTO "+table+" (version, name, checksum) VALUES ($1, $2, $3)",
				f.Version, f.Name, f.Checksum())
			return err
		})
		if err != nil {
			return fmt.Errorf("apply migration %s: %w", f.Name, err)
		}
	}
	return nil
}
