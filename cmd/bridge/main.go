// Command bridge is the one binary of the XMTP to HTTP bridge: it runs a
// bridge node, a development node, the local XMTP node, the database
// migrations, prints or checks its configuration, and is the client of a
// node's API for people (login, bridges, send, deliveries, replay) and for
// operators (admin, drain, smoke).
//
// main stays thin: it reads the environment and the arguments, and hands
// them to the command tree (root.go), whose commands build the parts from
// package system or call the API through package apiclient.
package main

import (
	"context"
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
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		// After the first signal starts a graceful stop, a second one
		// ends the process at once.
		<-ctx.Done()
		stop()
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
