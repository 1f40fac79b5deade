package main

import (
	"io"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/xmtpbridge/bridge/system/config"
)

// commandPaths walks the command tree and returns the path of every
// command a person can type, without the root's name.
func commandPaths(t *testing.T) [][]string {
	t.Helper()
	root := newRoot(&invocation{lookup: func(string) (string, bool) { return "", false }, stdout: io.Discard, stderr: io.Discard})
	var paths [][]string
	var walk func(c *cobra.Command, path []string)
	walk = func(c *cobra.Command, path []string) {
		paths = append(paths, path)
		for _, sub := range c.Commands() {
			if sub.Hidden || sub.Name() == "help" {
				continue
			}
			walk(sub, append(append([]string{}, path...), sub.Name()))
		}
	}
	walk(root, nil)
	return paths
}

// TestEveryCommandHasHelpAndUsageErrors runs the built binary for every
// command of the tree: --help and -h exit 0 with the usage on stdout; an
// unknown flag, and too many arguments, exit 2 with one line on stderr that
// points at --help.
func TestEveryCommandHasHelpAndUsageErrors(t *testing.T) {
	paths := commandPaths(t)
	for _, want := range []string{"node", "dev", "login", "bridges create", "replay", "admin drain", "completion bash", "env", "keys revoke",
		"tail", "messages", "plugins push", "plugins list", "plugins bind", "plugins unbind", "plugins delete",
		"subscribers", "subscribers remove", "broadcast"} {
		found := false
		for _, p := range paths {
			found = found || strings.Join(p, " ") == want
		}
		if !found {
			t.Errorf("the command tree lacks %q", want)
		}
	}
	oneLineHint := func(r result, path []string) bool {
		lines := strings.Split(strings.TrimRight(r.stderr, "\n"), "\n")
		return r.stdout == "" && len(lines) == 1 && strings.Contains(lines[0], "'"+strings.Join(append([]string{"bridge"}, path...), " ")+" --help'")
	}
	for _, path := range paths {
		name := strings.Join(append([]string{"bridge"}, path...), " ")
		for _, help := range []string{"--help", "-h"} {
			r := execBridge(t, nil, append(append([]string{}, path...), help)...)
			if r.code != 0 || !strings.Contains(r.stdout, "Usage:") || r.stderr != "" {
				t.Errorf("%s %s: exit %d, want 0 with the usage on stdout\nstdout:\n%s\nstderr:\n%s", name, help, r.code, r.stdout, r.stderr)
			}
		}
		r := execBridge(t, nil, append(append([]string{}, path...), "--no-such-flag")...)
		if r.code != 2 || !oneLineHint(r, path) || !strings.Contains(r.stderr, "unknown flag: --no-such-flag") {
			t.Errorf("%s --no-such-flag: exit %d, want 2 with a one-line hint\nstdout:\n%s\nstderr:\n%s", name, r.code, r.stdout, r.stderr)
		}
		r = execBridge(t, nil, append(append([]string{}, path...), "a1", "a2", "a3", "a4", "a5")...)
		if r.code != 2 || !oneLineHint(r, path) {
			t.Errorf("%s with five stray arguments: exit %d, want 2 with a one-line hint\nstdout:\n%s\nstderr:\n%s", name, r.code, r.stdout, r.stderr)
		}
	}
}

// TestMissingArgumentsAreUsageErrors checks commands that need arguments:
// without them they exit 2 with a one-line hint, before any network call.
func TestMissingArgumentsAreUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"bridges", "get"}, {"bridges", "create"}, {"send", "echo", "0x01"}, {"keys", "revoke"},
		{"replay"}, {"deliveries"}, {"secret", "rotate"}, {"admin", "drain"},
		// Found before any login is needed.
		{"bridges", "create", "echo"}, {"bridges", "update", "echo"}, {"bridges", "update", "echo", "--json"},
		{"replay", "echo"}, {"replay", "echo", "7", "--all-dead"}, {"deliveries", "echo", "--status", "lost"},
		{"deliveries", "echo", "7", "--status", "dead"}, {"tail"}, {"tail", "echo", "--reply", "hi", "--exec", "cat"},
		{"tail", "echo", "--exec", ""}, {"messages"}, {"broadcast", "echo"}, {"subscribers"}, {"subscribers", "remove", "echo"},
		{"plugins", "push"}, {"plugins", "bind", "echo", "on_message"}, {"plugins", "bind", "echo", "on_nothing", "p"},
		{"plugins", "bind", "echo", "on_message", "p", "--on-error", "explode"}, {"plugins", "bind", "echo", "on_message", "p", "--config", "novalue"},
		{"plugins", "unbind", "echo", "on_nothing"}, {"plugins", "delete"},
		{"bridges", "create", "echo", "--url", "http://x", "--retry", "sometimes"}, {"bridges", "update", "echo", "--delivery", "fax"},
	} {
		r := execBridge(t, nil, args...)
		lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
		if r.code != 2 || len(lines) != 1 || !strings.Contains(lines[0], "--help'") {
			t.Errorf("bridge %v: exit %d, want 2 with one line\n%s", args, r.code, r.stderr)
		}
	}
	// A group on its own shows its commands, as bad usage.
	r := execBridge(t, nil, "bridges")
	if r.code != 2 || !strings.Contains(r.stderr, "Available Commands:") || !strings.Contains(r.stderr, "create") {
		t.Errorf("bridge bridges: exit %d\n%s", r.code, r.stderr)
	}
	// Bad usage found by the command itself is a one-line hint too.
	r = execBridge(t, nil, "replay", "sink", "7", "--all-dead")
	if r.code != 2 || !strings.Contains(r.stderr, "give either a delivery id or --all-dead") {
		t.Errorf("replay with both a delivery and --all-dead: exit %d\n%s", r.code, r.stderr)
	}
}

func TestCompletionScripts(t *testing.T) {
	for shell, want := range map[string]string{"bash": "__start_bridge", "zsh": "#compdef bridge", "fish": "complete -c bridge"} {
		r := execBridge(t, nil, "completion", shell)
		if r.code != 0 || !strings.Contains(r.stdout, want) {
			t.Errorf("completion %s: exit %d, output lacks %q\n%s", shell, r.code, want, r.stderr)
		}
	}
	// The completion of a command's arguments works through the binary.
	r := execBridge(t, nil, "__complete", "check-config", "")
	if r.code != 0 || !strings.Contains(r.stdout, "xmtp-node") {
		t.Errorf("__complete check-config: exit %d\n%s", r.code, r.stdout)
	}
}

// TestEnvFitsIn100Columns checks `bridge env`: every variable, its
// default and description, in lines of at most 100 columns; --wide is the
// one-row-per-variable table.
func TestEnvFitsIn100Columns(t *testing.T) {
	r := execBridge(t, nil, "env")
	if r.code != 0 {
		t.Fatalf("bridge env: exit %d\n%s", r.code, r.stderr)
	}
	for _, line := range strings.Split(r.stdout, "\n") {
		if n := utf8.RuneCountInString(line); n > envWidth {
			t.Errorf("line of %d columns: %q", n, line)
		}
	}
	flat := strings.Join(strings.Fields(r.stdout), " ")
	for _, v := range config.Vars {
		if !strings.Contains(r.stdout, "\n"+v.Name+": ") && !strings.HasPrefix(r.stdout, v.Name+": ") {
			t.Errorf("bridge env lacks a line for %s", v.Name)
		}
		if !strings.Contains(flat, strings.Join(strings.Fields(v.Description), " ")) {
			t.Errorf("bridge env lacks the description of %s", v.Name)
		}
		if v.Default != "" && !strings.Contains(flat, "default "+v.Default) {
			t.Errorf("bridge env lacks the default of %s", v.Name)
		}
	}
	wide := execBridge(t, nil, "env", "--wide")
	if wide.code != 0 || !strings.HasPrefix(wide.stdout, "NAME") || strings.Count(wide.stdout, "\n") != len(config.Vars)+1 {
		t.Fatalf("bridge env --wide: exit %d\n%s", wide.code, wide.stdout)
	}
	if r := execBridge(t, nil, "env", "--wide", "--markdown"); r.code != 2 {
		t.Fatalf("bridge env --wide --markdown: exit %d", r.code)
	}
}

func TestWrapCutsLongWords(t *testing.T) {
	got := wrap("    "+strings.Repeat("x", 30)+" yy", 12, "  ")
	for _, line := range strings.Split(strings.TrimRight(got, "\n"), "\n") {
		if utf8.RuneCountInString(line) > 12 {
			t.Fatalf("wrap made a line of %d runes: %q", utf8.RuneCountInString(line), got)
		}
	}
	if strings.ReplaceAll(strings.Join(strings.Fields(got), ""), " ", "") != strings.Repeat("x", 30)+"yy" {
		t.Fatalf("wrap lost text: %q", got)
	}
}
