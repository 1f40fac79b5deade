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
	exitFailure = 1 // the node could not start, a component it needs failed, or the API refused
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
	code := run(ctx, os.Args[1:], &invocation{lookup: os.LookupEnv, stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr})
	stop()
	os.Exit(code)
}

// invocation is what a command runs with: its arguments, the environment
// and the streams.
type invocation struct {
	args   []string
	lookup func(string) (string, bool)
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
	// terminal reports whether w is a terminal; nil asks the operating
	// system (terminal.go).
	terminal func(w any) bool
}

// env returns the value of an environment variable, or "".
func (inv *invocation) env(name string) string {
	v, _ := inv.lookup(name)
	return v
}
