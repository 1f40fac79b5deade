package main

import (
	"context"
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// version and commit are set at build time with
// -ldflags "-X main.version=v1.2.3 -X main.commit=abc123"; buildVersion
// falls back to the module and VCS information of the build.
var (
	version = ""
	commit  = ""
)

// buildVersion returns the version and commit of this binary.
func buildVersion() (v, c string) {
	v, c = version, commit
	info, ok := debug.ReadBuildInfo()
	if v == "" {
		v = "(devel)"
		if ok && info.Main.Version != "" {
			v = info.Main.Version
		}
	}
	if c == "" {
		c = "unknown"
		if ok {
			modified := false
			for _, s := range info.Settings {
				switch s.Key {
				case "vcs.revision":
					c = s.Value
				case "vcs.modified":
					modified = s.Value == "true"
				}
			}
			if modified && c != "unknown" {
				c += "-dirty"
			}
		}
	}
	return v, c
}

func versionCommands(inv *invocation) []*cobra.Command {
	return []*cobra.Command{runCommand(inv, &cobra.Command{
		Use:   "version",
		Short: "Print the version and commit",
		Args:  cobra.NoArgs,
	}, runVersion)}
}

func runVersion(_ context.Context, inv *invocation) int {
	v, c := buildVersion()
	fmt.Fprintf(inv.stdout, "bridge %s (commit %s, %s %s/%s)\n", v, c, runtime.Version(), runtime.GOOS, runtime.GOARCH)
	return exitOK
}
