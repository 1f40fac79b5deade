package main

import (
	_ "embed"
	"fmt"
	"io"
	"strings"
	"text/template"

	"github.com/xmtpbridge/bridge/system"
	"github.com/xmtpbridge/bridge/system/config"
)

// quickStartText is the one source of the quick start: `bridge dev` prints
// its "banner" with the node's real values, and README.md's Quick start
// section is its "steps" with readmeQuickStart's values (`make
// readme-quickstart`; TestReadmeQuickStartIsTheTemplate keeps them equal).
//
//go:embed quickstart.tmpl
var quickStartText string

var quickStartTemplate = template.Must(template.New("quickstart").Parse(quickStartText))

// quickStart is what the template fills in.
type quickStart struct {
	API, XMTP, XMTPGRPC string
	// SignupKey is shown in the banner's header; SignupKeyValue is the
	// right-hand side of the steps' SIGNUP_KEY= line, as the shell reads it.
	SignupKey, SignupKeyValue string
	APIIdentity, Canary       string
	// Steps is the "steps" template rendered with these values and
	// indented, for the banner.
	Steps string
}

// readmeQuickStart are the values of README.md: the addresses `make run`
// serves on by default, and the signup key from the file dev keeps it in.
var readmeQuickStart = quickStart{
	API:            defaultAPI,
	XMTP:           "http://127.0.0.1:5555",
	SignupKeyValue: "$(cat .data/" + config.DevSignupKeyFile + ")   # or the BRIDGE_SIGNUP_KEY you set",
}

// printQuickStart writes what a newcomer needs once `bridge dev` serves:
// where everything listens, and steps to paste, with the real values,
// that start an identity to talk to, sign up, create a bridge, message it
// from xmtp-js, read its deliveries and send as it, with the CLI and then
// with curl. The forward target in the steps is the node's own /canary,
// which answers every relaycc body, so nothing else has to run.
func printQuickStart(w io.Writer, cfg *config.Config, n *system.Node) {
	q := quickStart{API: "http://" + n.HTTPAddr(), XMTP: "http://" + n.XMTPHTTPAddr(), XMTPGRPC: n.XMTPAddr()}
	if n.XMTPHTTPAddr() == "" {
		// An outside node (BRIDGE_XMTP_NODE): its HTTP gateway is taken to
		// be where `bridge xmtp-node` serves it by the same configuration.
		q.XMTP = "http://" + cfg.XMTPNodeHTTPAddr
		q.XMTPGRPC = cfg.XMTPNode + " (an outside node: the gateway is taken from " + config.EnvXMTPNodeHTTPAddr + ")"
	}
	q.SignupKey, q.SignupKeyValue = cfg.SignupKey, shellQuote(cfg.SignupKey)
	if cfg.SignupKey == "" {
		q.SignupKey, q.SignupKeyValue = "none: signup is open to any key", "open"
	}
	ids := n.Identities()
	q.APIIdentity = ids.API
	q.Canary = "off"
	if cfg.CanaryInterval > 0 {
		q.Canary = "every " + cfg.CanaryInterval.String() + ", from " + ids.Canary
	}
	if err := renderBanner(w, q); err != nil {
		fmt.Fprintf(w, "bridge dev: %v\n", err)
	}
}

// renderBanner writes the banner of q: its header, then its steps indented
// by two spaces.
func renderBanner(w io.Writer, q quickStart) error {
	var steps strings.Builder
	if err := quickStartTemplate.ExecuteTemplate(&steps, "steps", q); err != nil {
		return fmt.Errorf("render the quick start: %w", err)
	}
	q.Steps = "  " + strings.ReplaceAll(steps.String(), "\n", "\n  ")
	q.Steps = strings.ReplaceAll(q.Steps, "  \n", "\n")
	if err := quickStartTemplate.ExecuteTemplate(w, "banner", q); err != nil {
		return fmt.Errorf("render the quick start: %w", err)
	}
	return nil
}

// readmeQuickStartSteps renders the steps as README.md carries them.
func readmeQuickStartSteps() (string, error) {
	var b strings.Builder
	if err := quickStartTemplate.ExecuteTemplate(&b, "steps", readmeQuickStart); err != nil {
		return "", fmt.Errorf("render the quick start: %w", err)
	}
	return b.String() + "\n", nil
}

// shellQuote quotes s for a POSIX shell.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
