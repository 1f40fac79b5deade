package persistence

import (
	"context"
	"embed"

	"github.com/xmtpbridge/bridge/persistence/migration"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// ErrMigrationChanged means a migration file differs from the one that was
// applied to the database. Applied migrations must never be edited; add a
// new numbered file instead.
var ErrMigrationChanged = migration.ErrChanged

// schema is the bridge's migrations, recorded in schema_migrations.
var schema = migration.Set{
	FS:     migrationFiles,
	Dir:    "migrations",
	Table:  "schema_migrations",
	LockID: 0x6272696467656d67, // "bridgemg"
}

// Migrate brings the database at databaseURL up to the current bridge
// schema. Each numbered file under migrations/ runs once, in order, in its
// own transaction, and is recorded in schema_migrations with its checksum.
// Nodes starting together are safe, and running it on an up-to-date
// database changes nothing.
func Migrate(ctx context.Context, databaseURL string) error {
	return schema.Apply(ctx, databaseURL)
}
