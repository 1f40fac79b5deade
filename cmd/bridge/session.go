package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/xmtpbridge/bridge/internal/apiclient"
)

// Environment variables of the client commands; they override the saved
// login.
const (
	envAPIURL = "BRIDGE_API_URL"
	envAPIKey = "BRIDGE_API_KEY"
	// defaultAPI is where `make run` serves the API.
	defaultAPI = "http://127.0.0.1:8080"
)

// clientFlags are the flags every client command has.
type clientFlags struct {
	api  string
	json bool
}

func (f *clientFlags) add(c *cobra.Command) {
	c.Flags().StringVar(&f.api, "api", "", "base URL of the node's API (default $"+envAPIURL+", then the saved login)")
	c.Flags().BoolVar(&f.json, "json", false, "print JSON for scripts")
}

// session is a client command's connection to the API, and its output.
type session struct {
	inv *invocation
	cl  *apiclient.Client
	out *printer
	cmd string
}

// apiURL resolves the API's base URL: the flag, then BRIDGE_API_URL, then
// the saved login, then the node `make run` starts.
func (f *clientFlags) apiURL(inv *invocation, saved savedLogin) string {
	for _, u := range []string{f.api, inv.env(envAPIURL), saved.API} {
		if u = strings.TrimSpace(u); u != "" {
			return strings.TrimRight(u, "/")
		}
	}
	return defaultAPI
}

// newSession builds the client of a command that needs the API key.
func newSession(c *cobra.Command, inv *invocation, f *clientFlags) (*session, error) {
	saved, err := loadLogin(inv)
	if err != nil {
		return nil, failf(inv, c, "%v", err)
	}
	api := f.apiURL(inv, saved)
	if err := apiclient.CheckBaseURL(api); err != nil {
		return nil, usagef("%v", err)
	}
	key := strings.TrimSpace(inv.env(envAPIKey))
	if key == "" && saved.API != "" && sameAPI(saved.API, api) {
		key = saved.APIKey
	}
	if key == "" {
		return nil, failf(inv, c, "not logged in to %s: run `bridge login --api %s` or set %s", api, api, envAPIKey)
	}
	return &session{
		inv: inv, cmd: c.CommandPath(),
		cl:  &apiclient.Client{BaseURL: api, Token: key, UserAgent: userAgent()},
		out: newPrinter(inv, f.json),
	}, nil
}

func sameAPI(a, b string) bool {
	return strings.TrimRight(a, "/") == strings.TrimRight(b, "/")
}

// fail reports err, a failed call, and returns the exit error.
func (s *session) fail(err error) error {
	fmt.Fprintf(s.inv.stderr, "%s: %s\n", s.cmd, describe(err))
	return exitWith(exitFailure)
}

// failf prints a failure of command c and returns the exit error.
func failf(inv *invocation, c *cobra.Command, format string, args ...any) error {
	fmt.Fprintf(inv.stderr, "%s: %s\n", c.CommandPath(), fmt.Sprintf(format, args...))
	return exitWith(exitFailure)
}

// describe says what went wrong in one line: the API's code and message,
// or the URL that could not be reached.
func describe(err error) string {
	var ae *apiclient.Error
	var ue *apiclient.UnreachableError
	switch {
	case errors.As(err, &ae):
		return fmt.Sprintf("%s (HTTP %d): %s", ae.Code, ae.Status, ae.Message)
	case errors.As(err, &ue):
		return ue.Error()
	case errors.Is(err, context.Canceled):
		return "interrupted"
	}
	return err.Error()
}

func userAgent() string {
	v, _ := buildVersion()
	return "bridge-cli/" + v
}

// noTimeoutHTTP is an HTTP client for calls bounded by their context.
func noTimeoutHTTP() *http.Client { return &http.Client{} }

// readSecret reads a secret from stdin: without echo after a prompt on a
// terminal, else the first line.
func readSecret(inv *invocation, prompt string) (string, error) {
	if f, ok := terminalFile(inv, inv.stdin); ok {
		fmt.Fprint(inv.stderr, prompt)
		b, err := readPassword(f)
		fmt.Fprintln(inv.stderr)
		if err != nil {
			return "", fmt.Errorf("read %s: %w", strings.TrimSuffix(prompt, ": "), err)
		}
		return strings.TrimSpace(string(b)), nil
	}
	line, err := bufio.NewReader(io.LimitReader(inv.stdin, 4096)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("read stdin: %w", err)
	}
	return strings.TrimSpace(line), nil
}

// timeoutContext bounds one command's calls.
func timeoutContext(c *cobra.Command) (context.Context, context.CancelFunc) {
	return context.WithTimeout(c.Context(), 2*time.Minute)
}
