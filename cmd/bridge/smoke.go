package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"strconv"

	"github.com/xmtpbridge/bridge/smoke"
)

// Environment variables `bridge smoke` reads when the flag is not given.
const (
	envSmokeSignupKey = "BRIDGE_SMOKE_SIGNUP_KEY"
	envSmokeXMTP      = "BRIDGE_SMOKE_XMTP"
)

// runSmoke checks a running deployment from outside: exit 0 when every
// step passed, 1 when a step failed, 2 on bad arguments.
func runSmoke(ctx context.Context, inv *invocation) int {
	fs := flag.NewFlagSet("bridge smoke", flag.ContinueOnError)
	fs.SetOutput(inv.stderr)
	var cfg smoke.Config
	fs.StringVar(&cfg.Target, "target", "", "base URL of the deployment's API, for example https://bridge.example.net (required)")
	fs.StringVar(&cfg.SignupKey, "signup-key", "", "the deployment's signup key (default $"+envSmokeSignupKey+"; prefer the variable, flags show in process lists)")
	fs.StringVar(&cfg.XMTP, "xmtp", "", "host:port of the XMTP node's gRPC message API the deployment uses (default $"+envSmokeXMTP+"; required)")
	fs.BoolVar(&cfg.XMTPTLS, "xmtp-tls", false, "dial the XMTP node with TLS")
	fs.StringVar(&cfg.ForwardURL, "forward-url", "", "forward target of the smoke bridge (default TARGET/canary, the deployment's own canary endpoint)")
	fs.DurationVar(&cfg.Timeout, "timeout", smoke.DefaultTimeout, "time every step before cleanup may take together")
	fs.Usage = func() {
		fmt.Fprintln(inv.stderr, "Usage: bridge smoke --target=URL --xmtp=HOST:PORT [--signup-key=KEY] [--timeout=2m]")
		fmt.Fprintln(inv.stderr)
		fmt.Fprintln(inv.stderr, "Checks a running deployment from outside: health, signup of a throwaway account,")
		fmt.Fprintln(inv.stderr, "a bridge forwarding to the deployment's /canary, an XMTP round trip through it, cleanup.")
		fmt.Fprintln(inv.stderr, "Exit 0 when every step passed, 1 when one failed, 2 on bad arguments.")
		fmt.Fprintln(inv.stderr)
		fs.PrintDefaults()
	}
	if err := fs.Parse(inv.args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(inv.stderr, "bridge smoke: unexpected arguments %q\n", fs.Args())
		return exitUsage
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if !set["signup-key"] {
		cfg.SignupKey, _ = inv.lookup(envSmokeSignupKey)
	}
	if !set["xmtp"] {
		cfg.XMTP, _ = inv.lookup(envSmokeXMTP)
	}
	if cfg.Timeout <= 0 {
		fmt.Fprintf(inv.stderr, "bridge smoke: --timeout must be positive, got %s\n", strconv.Quote(fs.Lookup("timeout").Value.String()))
		return exitUsage
	}
	cfg.Out = inv.stdout
	report, err := smoke.Run(ctx, cfg)
	if err != nil {
		fmt.Fprintf(inv.stderr, "bridge smoke: %v\n", err)
		fmt.Fprintln(inv.stderr, "Run `bridge smoke -h` for the flags.")
		return exitUsage
	}
	if !report.OK() {
		f := report.Failed()
		fmt.Fprintf(inv.stderr, "bridge smoke: step %s failed: %v\n", f.Step, f.Err)
		return exitFailure
	}
	return exitOK
}
