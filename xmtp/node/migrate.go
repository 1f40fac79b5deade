package node

import (
	"context"
	"embed"

	"github.com/xmtpbridge/bridge/persistence/migration"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// schema is the node's migrations, recorded in xmtp_schema_migrations, so
// the node can share a database with a bridge or have one of its own.
var schema = migration.Set{
	FS:     migrationFiles,
	Dir:    "migrations",
	Table:  "xmtp_schema_migrations",
	LockID: 0x786d74706e6f6465, // "xmtpnode"
}

// Migrate brings the database at databaseURL up to the node's current
// schema. Running it again is a no-op; an applied file that was edited
// afterwards is refused.
func Migrate(ctx context.Context, databaseURL string) error {
	return schema.Apply(ctx, databaseURL)
}
