package main

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"
)

// exitError ends a command with an exit code once the command has printed
// why.
type exitError struct{ code int }

func (e *exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

// usageError is bad usage found by a command itself (cobra finds the
// rest); it exits 2 with a one-line hint.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return &usageError{fmt.Sprintf(format, args...)} }

// exitWith turns a command's exit code into the error RunE returns.
func exitWith(code int) error {
	if code == exitOK {
		return nil
	}
	return &exitError{code}
}

// commandSet adds the commands of one file to the root.
type commandSet func(inv *invocation) []*cobra.Command

var commandSets = []commandSet{
	nodeCommands,     // node, dev, xmtp-node, migrate, check-config
	envCommands,      // env
	versionCommands,  // version
	drainCommands,    // drain
	smokeCommands,    // smoke
	loginCommands,    // login
	accountCommands,  // account, keys
	bridgeCommands,   // bridges
	sendCommands,     // send, messages
	tailCommands,     // tail
	deliveryCommands, // deliveries, replay
	pluginCommands,   // plugins
	audienceCommands, // subscribers, broadcast
	secretCommands,   // secret
	adminCommands,    // admin
}

// newRoot builds the command tree for one invocation.
func newRoot(inv *invocation) *cobra.Command {
	root := &cobra.Command{
		Use:   "bridge",
		Short: "The XMTP to HTTP bridge: run a node, or manage bridges on one",
		Long: "bridge runs a bridge node (node, dev, xmtp-node, migrate) and is the client of a node's API:\n" +
			"log in, manage bridges, send messages, tail live traffic and answer it, look at deliveries and\n" +
			"replay them, manage plug-ins, subscribers and broadcasts.\n\n" +
			"Node settings come from the environment; run `bridge env` to list them.\n" +
			"Client commands use the API and key saved by `bridge login`, or BRIDGE_API_URL and BRIDGE_API_KEY.",
		SilenceErrors:     true,
		SilenceUsage:      true,
		Args:              groupArgs,
		RunE:              groupRun,
		CompletionOptions: cobra.CompletionOptions{HiddenDefaultCmd: false},
	}
	root.SetIn(inv.stdin)
	root.SetOut(inv.stdout)
	root.SetErr(inv.stderr)
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error { return &usageError{err.Error()} })
	for _, set := range commandSets {
		root.AddCommand(set(inv)...)
	}
	// `bridge completion bash|zsh|fish|powershell` is cobra's; on its own
	// it is a group like the others.
	root.InitDefaultCompletionCmd()
	for _, c := range root.Commands() {
		if c.Name() == "completion" {
			c.Args, c.RunE = groupArgs, groupRun
		}
	}
	return root
}

// group returns a command that only holds subcommands: on its own it
// prints its help to stderr and exits 2; with an unknown subcommand it is
// bad usage.
func group(use, short string, subs ...*cobra.Command) *cobra.Command {
	c := &cobra.Command{Use: use, Short: short, Args: groupArgs, RunE: groupRun}
	c.AddCommand(subs...)
	return c
}

func groupArgs(c *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usagef("unknown command %q for %q", args[0], c.CommandPath())
	}
	return nil
}

func groupRun(c *cobra.Command, _ []string) error {
	c.SetOut(c.ErrOrStderr())
	_ = c.Help()
	return &exitError{exitUsage}
}

// run executes args and returns the exit code.
func run(ctx context.Context, args []string, inv *invocation) int {
	root := newRoot(inv)
	root.SetArgs(args)
	cmd, err := root.ExecuteContextC(ctx)
	var ee *exitError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &ee):
		return ee.code
	}
	// Everything else is bad usage, found by cobra (unknown command or
	// flag, wrong number of arguments) or by the command.
	if cmd == nil {
		cmd = root
	}
	fmt.Fprintf(inv.stderr, "%s: %s (see '%s --help')\n", cmd.CommandPath(), oneLine(err.Error()), cmd.CommandPath())
	return exitUsage
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
