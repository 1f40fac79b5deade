package system

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/xmtpbridge/bridge/system/config"
)

// DevDatabase is the database dev mode uses on a Postgres server it found
// or started itself.
const DevDatabase = "bridge_dev"

// DevPrivatePort is the port of the private Postgres instance dev mode
// starts under the data directory; scripts/ensure-postgres.sh uses the
// same one, so both find the instance the other started.
const DevPrivatePort = 55432

// ErrNoPostgres means dev mode found no Postgres and cannot start one.
var ErrNoPostgres = errors.New("no postgres available")

// EnsureDevPostgres returns the URL of a Postgres that answers, for dev
// mode, trying in order: explicitURL (DATABASE_URL) when set; the machine's
// Postgres at 127.0.0.1:5432 (trust auth, user postgres); a private
// instance on 127.0.0.1:55432 with its data under dataDir/postgres, which
// it starts (and creates) from the system's PostgreSQL binaries, installing
// Debian's package first when they are missing and the process runs as
// root. On the last two it creates the database bridge_dev when missing
// and returns its URL. Progress goes to out. The private instance keeps
// running after the process exits, as a database server does; `make
// clean-data` stops it.
func EnsureDevPostgres(ctx context.Context, explicitURL, dataDir string, out io.Writer) (string, error) {
	say := func(format string, args ...any) { fmt.Fprintf(out, "dev: postgres: "+format+"\n", args...) }
	if explicitURL != "" {
		// DATABASE_URL is used or reported, never swapped for another
		// database: a missing database is created on its server.
		err := pgAnswers(ctx, explicitURL)
		if err == nil {
			return explicitURL, nil
		}
		if !missingDatabase(err) {
			return "", fmt.Errorf("DATABASE_URL %s does not answer: %w", config.RedactURL(explicitURL), err)
		}
		name, err := createDatabaseOf(ctx, explicitURL)
		if err != nil {
			return "", fmt.Errorf("DATABASE_URL %s names a database that does not exist, and creating it failed: %w", config.RedactURL(explicitURL), err)
		}
		say("created the database %s named by DATABASE_URL", name)
		return explicitURL, recordDevDatabase(dataDir, explicitURL)
	}
	if pgAnswers(ctx, config.DevDatabaseURL) == nil {
		say("using the machine's Postgres at 127.0.0.1:5432, database %s", DevDatabase)
		return withRecordedDevDatabase(ctx, config.DevDatabaseURL, dataDir)
	}
	private := fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", DevPrivatePort)
	if pgAnswers(ctx, private) == nil {
		say("reusing the private instance on 127.0.0.1:%d", DevPrivatePort)
		return withRecordedDevDatabase(ctx, private, dataDir)
	}
	datadir, err := filepath.Abs(filepath.Join(dataDir, "postgres"))
	if err != nil {
		return "", fmt.Errorf("start private postgres: %w", err)
	}
	if err := startPrivatePostgres(ctx, datadir, DevPrivatePort, say); err != nil {
		return "", err
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := pgAnswers(ctx, private)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("start private postgres: it does not answer at %s (see %s): %w", private, filepath.Join(datadir, "server.log"), err)
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	return withRecordedDevDatabase(ctx, private, dataDir)
}

// withRecordedDevDatabase is withDevDatabase that records the database in
// dataDir for `make clean-data`.
func withRecordedDevDatabase(ctx context.Context, serverURL, dataDir string) (string, error) {
	u, err := withDevDatabase(ctx, serverURL)
	if err != nil {
		return "", err
	}
	return u, recordDevDatabase(dataDir, u)
}

// pgAnswers reports whether rawURL accepts a login and runs a query.
func pgAnswers(ctx context.Context, rawURL string) error {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, rawURL)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	var one int
	return conn.QueryRow(ctx, "SELECT 1").Scan(&one)
}

// missingDatabase reports whether err is Postgres saying the database does
// not exist (SQLSTATE 3D000).
func missingDatabase(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "3D000"
}

// createDatabaseOf creates the database that rawURL names, connecting to the
// same server's postgres database, and returns its name.
func createDatabaseOf(ctx context.Context, rawURL string) (string, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "", fmt.Errorf("parse database url: %w", err)
	}
	name := strings.TrimPrefix(u.Path, "/")
	if name == "" || strings.Contains(name, "/") {
		return "", fmt.Errorf("database url names no database")
	}
	u.Path = "/postgres"
	if _, err := withDatabase(ctx, u.String(), name); err != nil {
		return "", err
	}
	return name, nil
}

// withDevDatabase creates bridge_dev on the server at serverURL when it is
// missing and returns its URL.
func withDevDatabase(ctx context.Context, serverURL string) (string, error) {
	return withDatabase(ctx, serverURL, DevDatabase)
}

// withDatabase creates the database name on the server at serverURL when
// it is missing and returns its URL.
func withDatabase(ctx context.Context, serverURL, name string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, serverURL)
	if err != nil {
		return "", fmt.Errorf("connect to %s: %w", config.RedactURL(serverURL), err)
	}
	defer conn.Close(context.Background())
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists); err != nil {
		return "", fmt.Errorf("look for database %s: %w", name, err)
	}
	if !exists {
		if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
			var again bool
			// Another process may have created it at the same moment.
			if qerr := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&again); qerr != nil || !again {
				return "", fmt.Errorf("create database %s: %w", name, err)
			}
		}
	}
	u, err := url.Parse(serverURL)
	if err != nil {
		return "", fmt.Errorf("parse database url: %w", err)
	}
	u.Path = "/" + name
	return u.String(), nil
}

// pgBinDir returns the newest /usr/lib/postgresql/N/bin that has initdb.
func pgBinDir() string {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool {
		vi, _ := strconv.Atoi(filepath.Base(filepath.Dir(dirs[i])))
		vj, _ := strconv.Atoi(filepath.Base(filepath.Dir(dirs[j])))
		return vi < vj
	})
	for i := len(dirs) - 1; i >= 0; i-- {
		if _, err := os.Stat(filepath.Join(dirs[i], "initdb")); err == nil {
			return dirs[i]
		}
	}
	return ""
}

// startPrivatePostgres creates the cluster in datadir if needed and starts
// it on 127.0.0.1:port. initdb and postgres refuse to run as root, so as
// root they run as the user postgres.
func startPrivatePostgres(ctx context.Context, datadir string, port int, say func(string, ...any)) error {
	root := os.Geteuid() == 0
	bin := pgBinDir()
	if bin == "" {
		if _, err := exec.LookPath("apt-get"); !root || err != nil {
			return fmt.Errorf("start private postgres: %w: no Postgres answers at 127.0.0.1:5432 and the PostgreSQL server binaries are missing; "+
				"install them (Debian/Ubuntu: sudo apt-get install postgresql), or start Postgres on 127.0.0.1:5432 with trust auth for user postgres, or set DATABASE_URL", ErrNoPostgres)
		}
		say("installing PostgreSQL with apt-get (no binaries under /usr/lib/postgresql)")
		for _, args := range [][]string{{"update", "-qq"}, {"install", "-y", "-qq", "postgresql"}} {
			cmd := exec.CommandContext(ctx, "apt-get", args...)
			cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
			if outb, err := cmd.CombinedOutput(); err != nil {
				return fmt.Errorf("install postgresql with apt-get %s: %w: %s", args[0], err, lastLines(outb))
			}
		}
		if bin = pgBinDir(); bin == "" {
			return fmt.Errorf("start private postgres: %w: apt-get installed postgresql but /usr/lib/postgresql/*/bin/initdb is missing", ErrNoPostgres)
		}
	}
	if err := os.MkdirAll(datadir, 0o700); err != nil {
		return fmt.Errorf("create %s: %w", datadir, err)
	}
	if err := os.Chmod(datadir, 0o700); err != nil {
		return fmt.Errorf("chmod %s: %w", datadir, err)
	}
	run := func(name string, args ...string) *exec.Cmd {
		if root {
			return exec.CommandContext(ctx, "runuser", append([]string{"-u", "postgres", "--", filepath.Join(bin, name)}, args...)...)
		}
		return exec.CommandContext(ctx, filepath.Join(bin, name), args...)
	}
	if root {
		u, err := user.Lookup("postgres")
		if err != nil {
			return fmt.Errorf("start private postgres: the user postgres does not exist (install the postgresql package): %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(datadir, uid, gid); err != nil {
			return fmt.Errorf("chown %s to postgres: %w", datadir, err)
		}
	}
	if _, err := os.Stat(filepath.Join(datadir, "PG_VERSION")); err != nil {
		say("creating a private cluster in %s", datadir)
		if outb, err := run("initdb", "-D", datadir, "-U", "postgres", "--auth=trust", "--encoding=UTF8").CombinedOutput(); err != nil {
			return fmt.Errorf("initdb %s (can the user running postgres reach it?): %w: %s", datadir, err, lastLines(outb))
		}
	}
	say("starting the private instance on 127.0.0.1:%d (data in %s)", port, datadir)
	opts := fmt.Sprintf("-p %d -c listen_addresses=127.0.0.1 -c unix_socket_directories=%s", port, datadir)
	if outb, err := run("pg_ctl", "-D", datadir, "-l", filepath.Join(datadir, "server.log"), "-w", "-t", "60", "-o", opts, "start").CombinedOutput(); err != nil {
		return fmt.Errorf("start private postgres (see %s): %w: %s", filepath.Join(datadir, "server.log"), err, lastLines(outb))
	}
	return nil
}

// lastLines returns the end of a command's output for an error message.
func lastLines(b []byte) string {
	const max = 600
	if len(b) > max {
		b = b[len(b)-max:]
	}
	return string(b)
}
