package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"

	"github.com/spf13/cobra"

	"github.com/xmtpbridge/bridge/persistence"
	"github.com/xmtpbridge/bridge/system"
	"github.com/xmtpbridge/bridge/system/config"
)

// nodeCommands are the commands that run the parts of the system.
func nodeCommands(inv *invocation) []*cobra.Command {
	modes := []string{"node", "dev", "xmtp-node", "migrate"}
	return []*cobra.Command{
		runCommand(inv, &cobra.Command{
			Use:   "node",
			Short: "Run a bridge node (production: every secret comes from the environment)",
			Long: "Runs a production node: migrates, starts the actor runtime and the canary prober, serves the API.\n" +
				"Exit 2 on bad configuration, 1 when Postgres or the XMTP node cannot be reached or a component fails.",
			Args: cobra.NoArgs,
		}, runNode),
		runCommand(inv, &cobra.Command{
			Use:   "dev",
			Short: "Run a development node with the local XMTP node and generated secrets",
			Long: "Runs a development node: finds or starts Postgres, runs the local XMTP node in-process\n" +
				"(unless BRIDGE_XMTP_NODE is set), generates the secrets it lacks and prints a quick start.",
			Args: cobra.NoArgs,
		}, runDev),
		runCommand(inv, &cobra.Command{
			Use:   "xmtp-node",
			Short: "Run only the local XMTP node (message API v1 over gRPC and HTTP)",
			Args:  cobra.NoArgs,
		}, runXMTPNode),
		runCommand(inv, &cobra.Command{
			Use:   "migrate",
			Short: "Apply the database migrations of the bridge and of the local XMTP node",
			Args:  cobra.NoArgs,
		}, runMigrate),
		runCommand(inv, &cobra.Command{
			Use:       "check-config [node|dev|xmtp-node|migrate]",
			Short:     "Check the environment for a mode (default node); exit 0 or 2",
			Args:      cobra.MaximumNArgs(1),
			ValidArgs: modes,
		}, runCheckConfig),
	}
}

// runCommand makes c run f with the command's arguments.
func runCommand(inv *invocation, c *cobra.Command, f func(context.Context, *invocation) int) *cobra.Command {
	c.RunE = func(cmd *cobra.Command, args []string) error {
		sub := *inv
		sub.args = args
		return exitWith(f(cmd.Context(), &sub))
	}
	return c
}

// devDataDir holds what dev mode keeps between runs, relative to the
// working directory (the repository root under `make run`).
const devDataDir = ".data"

// loadConfig reads the configuration for mode. On failure it prints every
// problem and returns exitUsage.
func loadConfig(inv *invocation, mode config.Mode) (*config.Config, int) {
	cfg, err := config.Load(inv.lookup, config.WithMode(mode))
	if err != nil {
		fmt.Fprintf(inv.stderr, "bridge %s: the configuration is invalid:\n", mode)
		var verr *config.ValidationError
		if errors.As(err, &verr) {
			for _, p := range verr.Problems {
				fmt.Fprintf(inv.stderr, "  %s\n", p.Error())
			}
		} else {
			fmt.Fprintf(inv.stderr, "  %v\n", err)
		}
		fmt.Fprintln(inv.stderr, "Run `bridge env` to see every variable with its default and an example.")
		return nil, exitUsage
	}
	return cfg, exitOK
}

func newLogger(w io.Writer, cfg *config.Config) *slog.Logger {
	opts := &slog.HandlerOptions{Level: cfg.LogLevel}
	var h slog.Handler = slog.NewTextHandler(w, opts)
	if cfg.LogFormat == "json" {
		h = slog.NewJSONHandler(w, opts)
	}
	return slog.New(h).With("node", cfg.NodeID)
}

// fail reports an error that stopped a command and returns exitFailure.
func fail(inv *invocation, logger *slog.Logger, name string, err error) int {
	logger.Error("command failed", "command", name, "err", err)
	fmt.Fprintf(inv.stderr, "bridge %s: %v\n", name, err)
	return exitFailure
}

func runNode(ctx context.Context, inv *invocation) int {
	cfg, code := loadConfig(inv, config.ModeNode)
	if cfg == nil {
		return code
	}
	return runBridge(ctx, inv, cfg, nil, true)
}

func runDev(ctx context.Context, inv *invocation) int {
	cfg, code := loadConfig(inv, config.ModeDev)
	if cfg == nil {
		return code
	}
	if err := cfg.PrepareDev(devDataDir, inv.stderr); err != nil {
		fmt.Fprintf(inv.stderr, "bridge dev: %v\n", err)
		return exitFailure
	}
	explicit, _ := inv.lookup(config.EnvDatabaseURL)
	url, err := system.EnsureDevPostgres(ctx, explicit, devDataDir, inv.stderr)
	if err != nil {
		fmt.Fprintf(inv.stderr, "bridge dev: %v\n", err)
		return exitFailure
	}
	cfg.DatabaseURL = url
	_, keyFromEnv := inv.lookup(config.EnvMasterKey)
	return runBridge(ctx, inv, cfg, func(n *system.Node) { printQuickStart(inv.stdout, cfg, n) }, keyFromEnv)
}

func runBridge(ctx context.Context, inv *invocation, cfg *config.Config, started func(*system.Node), keyFromEnv bool) int {
	logger := newLogger(inv.stderr, cfg)
	v, c := buildVersion()
	// One short line; the whole (redacted) configuration is at debug, and
	// `bridge check-config` prints it.
	logger.Info("starting bridge", "version", v, "commit", c, "mode", string(cfg.Mode), "http_addr", cfg.HTTPAddr,
		"database_url", config.RedactURL(cfg.DatabaseURL))
	logger.Debug("configuration", "config", cfg)
	err := system.Run(ctx, system.Options{Config: cfg, Logger: logger, Version: v, Commit: c, Started: started})
	if err != nil {
		code := fail(inv, logger, string(cfg.Mode), err)
		if cfg.Mode == config.ModeDev && errors.Is(err, persistence.ErrMigrationChanged) {
			fmt.Fprintf(inv.stderr, "bridge dev: the database %s was migrated by another version of the schema; "+
				"drop it (it holds only development data) or set DATABASE_URL to another database\n", config.RedactURL(cfg.DatabaseURL))
		}
		if cfg.Mode == config.ModeDev {
			fmt.Fprint(inv.stderr, system.DevKeyMismatch(err, cfg, devDataDir, keyFromEnv))
		}
		return code
	}
	logger.Info("bridge stopped")
	return exitOK
}

func runXMTPNode(ctx context.Context, inv *invocation) int {
	cfg, code := loadConfig(inv, config.ModeXMTPNode)
	if cfg == nil {
		return code
	}
	logger := newLogger(inv.stderr, cfg)
	logger.Info("starting local xmtp node", "config", cfg)
	if err := system.RunXMTPNode(ctx, system.Options{Config: cfg, Logger: logger}); err != nil {
		return fail(inv, logger, "xmtp-node", err)
	}
	logger.Info("local xmtp node stopped")
	return exitOK
}

func runMigrate(ctx context.Context, inv *invocation) int {
	cfg, code := loadConfig(inv, config.ModeMigrate)
	if cfg == nil {
		return code
	}
	logger := newLogger(inv.stderr, cfg)
	if err := system.Migrate(ctx, cfg.DatabaseURL); err != nil {
		return fail(inv, logger, "migrate", err)
	}
	logger.Info("database migrated", "database_url", config.RedactURL(cfg.DatabaseURL))
	return exitOK
}

func runCheckConfig(ctx context.Context, inv *invocation) int {
	mode := config.ModeNode
	if len(inv.args) == 1 {
		mode = config.Mode(inv.args[0])
		switch mode {
		case config.ModeNode, config.ModeDev, config.ModeXMTPNode, config.ModeMigrate:
		default:
			fmt.Fprintf(inv.stderr, "bridge check-config: unknown mode %q; use node, dev, xmtp-node or migrate\n", inv.args[0])
			return exitUsage
		}
	}
	cfg, code := loadConfig(inv, mode)
	if cfg == nil {
		return code
	}
	if mode == config.ModeDev {
		// dev's state must fit together too: its key and its database.
		_, keyFromEnv := inv.lookup(config.EnvMasterKey)
		checked := *cfg
		checked.DatabaseURL, _ = inv.lookup(config.EnvDatabaseURL)
		if err := system.CheckDev(ctx, &checked, devDataDir); err != nil {
			if msg := system.DevKeyMismatch(err, &checked, devDataDir, keyFromEnv); msg != "" {
				fmt.Fprint(inv.stderr, msg)
			} else {
				fmt.Fprintf(inv.stderr, "bridge check-config dev: %v\n", err)
			}
			return exitUsage
		}
	}
	fmt.Fprintf(inv.stdout, "the configuration is valid for %s mode\n%s\n", mode, cfg)
	return exitOK
}
