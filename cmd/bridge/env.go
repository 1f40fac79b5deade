package main

import (
	"fmt"
	"io"
	"strings"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/xmtpbridge/bridge/system/config"
)

// envWidth is the width `bridge env` keeps to without --wide.
const envWidth = 100

func envCommands(inv *invocation) []*cobra.Command {
	var markdown, wide bool
	c := &cobra.Command{
		Use:   "env",
		Short: "Print every environment variable of the bridge",
		Long: "Prints every environment variable with its default, an example, the modes that require it\n" +
			"and what it does, in 100 columns. --wide prints one aligned row per variable;\n" +
			"--markdown prints the table README.md carries (`make readme-env`).",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			switch {
			case markdown && wide:
				return usagef("--markdown and --wide do not go together")
			case markdown:
				fmt.Fprint(inv.stdout, config.Markdown())
			case wide:
				if err := config.WriteTable(inv.stdout); err != nil {
					return exitWith(exitFailure)
				}
			default:
				writeEnv(inv.stdout, config.Vars)
			}
			return nil
		},
	}
	c.Flags().BoolVar(&markdown, "markdown", false, "print the Markdown table of README.md")
	c.Flags().BoolVar(&wide, "wide", false, "print one row per variable, as wide as it takes")
	return []*cobra.Command{c}
}

// writeEnv writes each variable as a line with its name and facts, then
// its description wrapped and indented, all within envWidth columns.
func writeEnv(w io.Writer, vars []config.Var) {
	for i, v := range vars {
		if i > 0 {
			fmt.Fprintln(w)
		}
		facts := []string{}
		if v.Default != "" {
			facts = append(facts, "default "+v.Default)
		}
		if v.Example != "" {
			facts = append(facts, "example "+v.Example)
		}
		if v.Required != "" {
			facts = append(facts, "required in "+v.Required)
		}
		if v.Secret {
			facts = append(facts, "secret")
		}
		head := wrap(v.Name+": "+strings.Join(facts, "; "), envWidth, "    ")
		fmt.Fprint(w, head)
		fmt.Fprint(w, wrap("    "+v.Description, envWidth, "    "))
	}
}

// wrap breaks s at spaces into lines of at most width runes, the later
// ones starting with indent; a word longer than a line is cut.
func wrap(s string, width int, indent string) string {
	var b strings.Builder
	line := ""
	lead := leadingSpaces(s)
	words := strings.Fields(s)
	flush := func() {
		b.WriteString(line)
		b.WriteString("\n")
		line = ""
	}
	for _, word := range words {
		for {
			prefix := indent
			if b.Len() == 0 {
				prefix = lead
			}
			var next string
			if line == "" {
				next = prefix + word
			} else {
				next = line + " " + word
			}
			if utf8.RuneCountInString(next) <= width {
				line = next
				break
			}
			if line != "" {
				flush()
				continue
			}
			// One word wider than the line: cut it.
			r := []rune(next)
			line = string(r[:width])
			flush()
			word = string(r[width:])
		}
	}
	if line != "" {
		flush()
	}
	return b.String()
}

func leadingSpaces(s string) string {
	return s[:len(s)-len(strings.TrimLeft(s, " "))]
}
