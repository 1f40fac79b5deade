package system

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/xmtpbridge/bridge/persistence"
	"github.com/xmtpbridge/bridge/system/config"
)

// DevDatabaseFile is the file, under the data directory, where dev mode
// records the URL of the database it created or chose, so that `make
// clean-data` (scripts/clean-data.sh) drops exactly that database. A
// DATABASE_URL naming a database that already existed is not recorded:
// it is not dev's to drop.
const DevDatabaseFile = "dev-database"

// recordDevDatabase writes rawURL to dataDir/dev-database with mode 0600.
func recordDevDatabase(dataDir, rawURL string) error {
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return fmt.Errorf("record dev database: %w", err)
	}
	path := filepath.Join(dataDir, DevDatabaseFile)
	if err := os.WriteFile(path, []byte(rawURL+"\n"), 0o600); err != nil {
		return fmt.Errorf("record dev database: %w", err)
	}
	return os.Chmod(path, 0o600)
}

// recordedDevDatabase returns the URL dev recorded in dataDir, or "".
func recordedDevDatabase(dataDir string) string {
	b, err := os.ReadFile(filepath.Join(dataDir, DevDatabaseFile))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// databaseName returns the database and the host:port a URL names.
func databaseName(rawURL string) (name, host string) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "?", "?"
	}
	return strings.TrimPrefix(u.Path, "/"), u.Host
}

// checkoutDatabaseURL returns rawURL with its database replaced by one
// named after the checkout (the absolute data directory), so that two
// checkouts can keep their own dev databases on one server.
func checkoutDatabaseURL(rawURL, dataDir string) string {
	abs, err := filepath.Abs(dataDir)
	if err != nil {
		abs = dataDir
	}
	sum := sha256.Sum256([]byte(abs))
	u, err := url.Parse(rawURL)
	if err != nil {
		return rawURL
	}
	u.User = url.User(u.User.Username())
	u.Path = "/" + DevDatabase + "_" + hex.EncodeToString(sum[:4])
	return u.String()
}

// DevKeyMismatch explains a dev database sealed under another master key:
// it names the key file and the database and gives the commands that fix
// it. keyFromEnv says the key came from BRIDGE_MASTER_KEY rather than the
// key file. err must wrap persistence.ErrKeyMismatch; otherwise it returns
// "".
func DevKeyMismatch(err error, cfg *config.Config, dataDir string, keyFromEnv bool) string {
	if !errors.Is(err, persistence.ErrKeyMismatch) {
		return ""
	}
	name, host := databaseName(cfg.DatabaseURL)
	keyFile := filepath.Join(dataDir, config.DevMasterKeyFile)
	keySource := keyFile
	if keyFromEnv {
		keySource = config.EnvMasterKey
	}
	var b strings.Builder
	fmt.Fprintf(&b, "bridge dev: the master key in %s does not match the database %s on %s:\n", keySource, name, host)
	fmt.Fprintf(&b, "  the database was sealed under another key (another checkout's %s, or one deleted by `make clean-data`).\n", config.DevMasterKeyFile)
	fmt.Fprintf(&b, "  Fix, keeping both: give this checkout its own database (dev creates it):\n")
	fmt.Fprintf(&b, "    DATABASE_URL='%s' make run\n", checkoutDatabaseURL(cfg.DatabaseURL, dataDir))
	if recordedDevDatabase(dataDir) == cfg.DatabaseURL {
		fmt.Fprintf(&b, "  Fix, starting over: make clean-data && make run   (drops %s on %s and deletes %s: only development data)\n", name, host, dataDir)
	} else {
		fmt.Fprintf(&b, "  Fix, starting over: drop %s (it holds only development data), or set %s to the key that sealed it:\n", name, config.EnvMasterKey)
		fmt.Fprintf(&b, "    psql '%s' -c 'DROP DATABASE %s WITH (FORCE)'\n", config.RedactURL(serverURL(cfg.DatabaseURL)), name)
	}
	return b.String()
}

// serverURL returns rawURL naming the server's postgres database.
func serverURL(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return rawURL
	}
	u.Path = "/postgres"
	return u.String()
}

// CheckDev checks, without starting or writing anything, that dev mode
// can open its database with its master key: it finds the database dev
// would use (DATABASE_URL, the one dev recorded, or bridge_dev on the
// machine's Postgres) and compares the key in dataDir with the one that
// sealed it. A database that does not answer or does not exist yet passes:
// dev creates it. The error wraps persistence.ErrKeyMismatch on a
// mismatch; cfg.DatabaseURL is set to the database checked.
func CheckDev(ctx context.Context, cfg *config.Config, dataDir string) error {
	key := cfg.MasterKey.Key
	if key == nil {
		k, exists, err := config.ReadDevMasterKey(dataDir)
		if err != nil {
			return err
		}
		if !exists {
			// dev makes a new key: any database sealed before is foreign.
			k = make([]byte, 32)
		}
		key = k
	}
	candidates := []string{}
	if cfg.DatabaseURL != "" {
		candidates = append(candidates, cfg.DatabaseURL)
	} else {
		if rec := recordedDevDatabase(dataDir); rec != "" {
			candidates = append(candidates, rec)
		}
		candidates = append(candidates, strings.Replace(config.DevDatabaseURL, "/postgres?", "/"+DevDatabase+"?", 1))
	}
	for _, u := range candidates {
		if pgAnswers(ctx, u) != nil {
			continue
		}
		sealer, err := persistence.NewSealer(persistence.MasterKey{ID: cfg.MasterKey.ID, Key: key})
		if err != nil {
			return fmt.Errorf("build sealer: %w", err)
		}
		store, err := persistence.Open(ctx, u, sealer)
		if err != nil {
			return fmt.Errorf("open store %s: %w", config.RedactURL(u), err)
		}
		defer store.Close()
		cfg.DatabaseURL = u
		return store.VerifySealingKeys(ctx)
	}
	return nil
}
