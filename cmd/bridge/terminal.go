package main

import (
	"os"

	"golang.org/x/term"
)

// isTerminal reports whether w is a terminal.
func (inv *invocation) isTerminal(w any) bool {
	if inv.terminal != nil {
		return inv.terminal(w)
	}
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// terminalFile returns r as a file when it is a terminal one can read a
// secret from without echo.
func terminalFile(inv *invocation, r any) (*os.File, bool) {
	f, ok := r.(*os.File)
	if !ok || !inv.isTerminal(f) {
		return nil, false
	}
	return f, true
}

func readPassword(f *os.File) ([]byte, error) { return term.ReadPassword(int(f.Fd())) }
