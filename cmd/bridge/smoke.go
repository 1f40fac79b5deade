package main

import (
	"fmt"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/xmtpbridge/bridge/smoke"
)

// Environment variables `bridge smoke` reads when the flag is not given.
const (
	envSmokeSignupKey = "BRIDGE_SMOKE_SIGNUP_KEY"
	envSmokeXMTP      = "BRIDGE_SMOKE_XMTP"
)

// smokeCommands is `bridge smoke`, which checks a running deployment from
// outside: exit 0 when every step passed, 1 when a step failed, 2 on bad
// arguments.
func smokeCommands(inv *invocation) []*cobra.Command {
	var cfg smoke.Config
	c := &cobra.Command{
		Use:   "smoke --target=URL --xmtp=HOST:PORT [--signup-key=KEY] [--timeout=2m]",
		Short: "Check a running deployment from outside",
		Long: "Checks a running deployment from outside: health, signup of a throwaway account,\n" +
			"a bridge forwarding to the deployment's /canary, an XMTP round trip through it, cleanup.\n" +
			"Exit 0 when every step passed, 1 when one failed, 2 on bad arguments.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !cmd.Flags().Changed("signup-key") {
				cfg.SignupKey = inv.env(envSmokeSignupKey)
			}
			if !cmd.Flags().Changed("xmtp") {
				cfg.XMTP = inv.env(envSmokeXMTP)
			}
			if cfg.Timeout <= 0 {
				return usagef("--timeout must be positive, got %s", strconv.Quote(cmd.Flags().Lookup("timeout").Value.String()))
			}
			cfg.Out = inv.stdout
			report, err := smoke.Run(cmd.Context(), cfg)
			if err != nil {
				return usagef("%v", err)
			}
			if !report.OK() {
				f := report.Failed()
				fmt.Fprintf(inv.stderr, "bridge smoke: step %s failed: %v\n", f.Step, f.Err)
				return exitWith(exitFailure)
			}
			return nil
		},
	}
	fs := c.Flags()
	fs.StringVar(&cfg.Target, "target", "", "base URL of the deployment's API, for example https://bridge.example.net (required)")
	fs.StringVar(&cfg.SignupKey, "signup-key", "", "the deployment's signup key (default $"+envSmokeSignupKey+"; prefer the variable, flags show in process lists)")
	fs.StringVar(&cfg.XMTP, "xmtp", "", "host:port of the XMTP node's gRPC message API the deployment uses (default $"+envSmokeXMTP+"; required)")
	fs.BoolVar(&cfg.XMTPTLS, "xmtp-tls", false, "dial the XMTP node with TLS")
	fs.StringVar(&cfg.ForwardURL, "forward-url", "", "forward target of the smoke bridge (default TARGET/canary, the deployment's own canary endpoint)")
	fs.DurationVar(&cfg.Timeout, "timeout", smoke.DefaultTimeout, "time every step before cleanup may take together")
	return []*cobra.Command{c}
}
