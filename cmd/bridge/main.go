package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// Exit codes of the binary.
const (
	exitOK      = 0
	exitFailure = 1 // the node could not start or a component it needs failed
	exitUsage   = 2 // bad arguments or bad configuration
)

func main() {
	ctx, stop := context.WithCancel(context.Background())
	// Room for both signals, so a second one that follows the first at
	// once is not lost.
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		// The first signal starts a graceful stop; a second one ends the
		// process at once: it dies of that signal (exit status 128 + its
		// number, as a shell shows it).
		<-sigs
		stop()
		sig := (<-sigs).(syscall.Signal)
		fmt.Fprintf(os.Stderr, "bridge: second signal (%s): stopping at once\n", sig)
		signal.Reset(sig)
		_ = syscall.Kill(os.Getpid(), sig)
	}()
	code := run(ctx, os.Args[1:], os.LookupEnv, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// command is one subcommand of the binary.
type command struct {
	name    string
	summary string
	run     func(ctx context.Context, inv *invocation) int
}

// invocation is what a command runs with: its arguments, the environment
// and the output streams.
type invocation struct {
	args   []string
	lookup func(string) (string, bool)
	stdout io.Writer
	stderr io.Writer
}

func commands() []command {
	return []command{
		{"node", "run a bridge node (production: every secret comes from the environment)", runNode},
		{"dev", "run a development node with the local XMTP node and generated secrets", runDev},
		{"xmtp-node", "run only the local XMTP node (message API v1 over gRPC and HTTP)", runXMTPNode},
		{"migrate", "apply the database migrations of the bridge and of the local XMTP node", runMigrate},
		{"env", "print every environment variable (--markdown: the README table)", runEnv},
		{"check-config", "check the environment for a mode (node, dev, xmtp-node, migrate; default node)", runCheckConfig},
		{"version", "print the version", runVersion},
		{"drain", "move a node's identities to the other members before it stops (--node-id=ID --api=URL)", runDrain},
		{"smoke", "check a running deployment from outside (--target=URL --xmtp=HOST:PORT)", runSmoke},
	}
}

// run dispatches args to a command and returns the exit code.
func run(ctx context.Context, args []string, lookup func(string) (string, bool), stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return exitUsage
	}
	for _, c := range commands() {
		if c.name == args[0] {
			return c.run(ctx, &invocation{args: args[1:], lookup: lookup, stdout: stdout, stderr: stderr})
		}
	}
	switch args[0] {
	case "help", "-h", "-help", "--help":
	default:
		fmt.Fprintf(stderr, "bridge: unknown command %q\n\n", args[0])
	}
	usage(stderr)
	return exitUsage
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "Usage: bridge <command> [arguments]")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Commands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-13s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "All settings come from the environment; run `bridge env` to list them.")
}
