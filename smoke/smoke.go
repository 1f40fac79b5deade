package smoke

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	nethttp "net/http"
	"net/url"
	"strings"
	"time"
)

// The steps, in the order they run.
const (
	StepHealth  = "health"
	StepSignup  = "signup"
	StepBridge  = "bridge"
	StepCanary  = "canary"
	StepCleanup = "cleanup"
)

// Defaults of a Config.
const (
	DefaultTimeout        = 2 * time.Minute
	DefaultCleanupTimeout = 30 * time.Second
	// requestTimeout bounds one HTTP request of the check.
	requestTimeout = 15 * time.Second
)

// ErrConfig reports a Config that cannot run; the command line answers it
// with a usage error.
var ErrConfig = errors.New("invalid smoke configuration")

// Config says which deployment to check and how.
type Config struct {
	// Target is the base URL of the deployment's API, for example
	// https://bridge.example.net. Required.
	Target string
	// SignupKey is presented on POST /v1/accounts; empty works only on
	// a deployment with open signup.
	SignupKey string
	// XMTP is host:port of the XMTP node (message API v1 over gRPC) that
	// the deployment's bridges use. Required: no endpoint of the API
	// reports it.
	XMTP string
	// XMTPTLS dials the XMTP node with TLS.
	XMTPTLS bool
	// ForwardURL is the forward target of the smoke bridge; empty means
	// Target + "/canary", the deployment's own canary endpoint, which
	// answers every message with a text that contains it.
	ForwardURL string
	// Timeout bounds every step before cleanup together; 0 means
	// DefaultTimeout.
	Timeout time.Duration
	// CleanupTimeout bounds the cleanup step; 0 means
	// DefaultCleanupTimeout.
	CleanupTimeout time.Duration
	// Out receives one line per step; nil discards them.
	Out io.Writer
	// HTTPClient makes the HTTP requests; nil uses a plain net/http
	// client (each request is still bounded by its own timeout).
	HTTPClient *nethttp.Client
}

// Result is the outcome of one step.
type Result struct {
	// Step is the step's name (StepHealth, …).
	Step string
	// OK is true when the step passed.
	OK bool
	// Skipped is true when an earlier failure kept the step from running.
	Skipped bool
	// Duration is how long the step took.
	Duration time.Duration
	// Detail says what the step saw when it passed.
	Detail string
	// Err is why the step failed.
	Err error
}

// Report is the outcome of a whole check.
type Report struct {
	// Steps holds every step in order, the skipped ones included.
	Steps []Result
	// Duration is how long the check took, cleanup included.
	Duration time.Duration
}

// Failed returns the first failed step, or nil when every step passed.
func (r *Report) Failed() *Result {
	for i := range r.Steps {
		if !r.Steps[i].OK && !r.Steps[i].Skipped {
			return &r.Steps[i]
		}
	}
	return nil
}

// OK reports whether every step passed.
func (r *Report) OK() bool { return r.Failed() == nil }

// Step returns the result of the named step, or nil.
func (r *Report) Step(name string) *Result {
	for i := range r.Steps {
		if r.Steps[i].Step == name {
			return &r.Steps[i]
		}
	}
	return nil
}

// check is one run: the configuration and what the steps created so far,
// which cleanup deletes.
type check struct {
	cfg   Config
	base  *url.URL
	http  *nethttp.Client
	nonce string

	apiKey   string // the throwaway account's API key; never printed
	keyID    string
	account  string
	bridgeID string
	address  string
}

// Validate checks cfg and returns an error wrapping ErrConfig that names
// every problem.
func (cfg Config) Validate() error {
	var problems []string
	if _, err := parseTarget(cfg.Target); err != nil {
		problems = append(problems, err.Error())
	}
	if cfg.XMTP == "" {
		problems = append(problems, "the XMTP node address is required (host:port of the message API the deployment uses); no endpoint of the API reports it")
	} else if err := checkHostPort(cfg.XMTP); err != nil {
		problems = append(problems, err.Error())
	}
	if cfg.ForwardURL != "" {
		if _, err := parseTarget(cfg.ForwardURL); err != nil {
			problems = append(problems, "forward URL: "+err.Error())
		}
	}
	if cfg.Timeout < 0 || cfg.CleanupTimeout < 0 {
		problems = append(problems, "timeouts must not be negative")
	}
	if len(problems) > 0 {
		return fmt.Errorf("%w: %s", ErrConfig, strings.Join(problems, "; "))
	}
	return nil
}

// parseTarget checks that raw is an absolute http or https URL without a
// query or fragment and returns it without a trailing slash.
func parseTarget(raw string) (*url.URL, error) {
	if raw == "" {
		return nil, errors.New("the target URL is required, for example https://bridge.example.net")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("target %q is not a URL: %w", raw, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("target %q must be an http:// or https:// URL with a host, for example https://bridge.example.net", raw)
	}
	if u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return nil, fmt.Errorf("target %q must not carry a query, a fragment or credentials", raw)
	}
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawPath = ""
	return u, nil
}

// Run checks the deployment cfg names and returns the report. It returns
// an error wrapping ErrConfig, and runs nothing, when cfg is invalid.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.CleanupTimeout == 0 {
		cfg.CleanupTimeout = DefaultCleanupTimeout
	}
	if cfg.Out == nil {
		cfg.Out = io.Discard
	}
	base, _ := parseTarget(cfg.Target)
	c := &check{cfg: cfg, base: base, http: cfg.HTTPClient, nonce: newNonce()}
	if c.http == nil {
		c.http = &nethttp.Client{}
	}
	if c.cfg.ForwardURL == "" {
		c.cfg.ForwardURL = base.String() + "/canary"
	}

	start := time.Now()
	report := &Report{}
	fmt.Fprintf(cfg.Out, "smoke check of %s (run %s)\n", base.Redacted(), c.nonce)

	stepCtx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	steps := []struct {
		name string
		run  func(context.Context) (string, error)
	}{
		{StepHealth, c.health},
		{StepSignup, c.signup},
		{StepBridge, c.bridge},
		{StepCanary, c.canary},
	}
	failed := false
	for _, s := range steps {
		if failed {
			r := Result{Step: s.name, Skipped: true}
			report.Steps = append(report.Steps, r)
			c.print(r)
			continue
		}
		r := c.runStep(stepCtx, s.name, s.run)
		report.Steps = append(report.Steps, r)
		c.print(r)
		failed = !r.OK
	}
	cancel()

	// Cleanup runs whatever happened, on its own deadline, and is not
	// cancelled by the end of ctx either: an interrupted check still
	// deletes what it created.
	cleanCtx, cancelClean := context.WithTimeout(context.WithoutCancel(ctx), cfg.CleanupTimeout)
	r := c.runStep(cleanCtx, StepCleanup, c.cleanup)
	cancelClean()
	report.Steps = append(report.Steps, r)
	c.print(r)

	report.Duration = time.Since(start)
	if f := report.Failed(); f != nil {
		fmt.Fprintf(cfg.Out, "FAIL: step %s: %v\n", f.Step, f.Err)
	} else {
		fmt.Fprintf(cfg.Out, "PASS: every step passed in %s\n", round(report.Duration))
	}
	return report, nil
}

// runStep runs one step and times it.
func (c *check) runStep(ctx context.Context, name string, run func(context.Context) (string, error)) Result {
	start := time.Now()
	detail, err := run(ctx)
	return Result{Step: name, OK: err == nil, Duration: time.Since(start), Detail: detail, Err: err}
}

// print writes the line of one step: name, ok/FAIL/skip, duration, and
// what it saw or why it failed.
func (c *check) print(r Result) {
	status, text := "ok", r.Detail
	switch {
	case r.Skipped:
		status, text = "skip", "an earlier step failed"
	case !r.OK:
		status, text = "FAIL", r.Err.Error()
	}
	fmt.Fprintf(c.cfg.Out, "%-8s %-4s %8s  %s\n", r.Step, status, round(r.Duration), text)
}

func round(d time.Duration) time.Duration {
	if d < time.Second {
		return d.Round(time.Millisecond)
	}
	return d.Round(10 * time.Millisecond)
}

// newNonce returns a random hex string naming this run.
func newNonce() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// health checks that /healthz and /readyz answer 200.
func (c *check) health(ctx context.Context) (string, error) {
	var node string
	for _, path := range []string{"/healthz", "/readyz"} {
		var h healthAnswer
		if err := c.call(ctx, nethttp.MethodGet, path, "", nil, nethttp.StatusOK, &h); err != nil {
			return "", err
		}
		if !h.OK {
			return "", fmt.Errorf("GET %s: answered 200 without \"ok\":true", path)
		}
		node = h.Node
	}
	if node != "" {
		return "/healthz and /readyz answer 200 (node " + node + ")", nil
	}
	return "/healthz and /readyz answer 200", nil
}

// signup creates the throwaway account and keeps its API key.
func (c *check) signup(ctx context.Context) (string, error) {
	req := map[string]string{"name": "smoke " + c.nonce, "signupKey": c.cfg.SignupKey}
	var a accountCreated
	if err := c.call(ctx, nethttp.MethodPost, "/v1/accounts", "", req, nethttp.StatusCreated, &a); err != nil {
		var herr *statusError
		if errors.As(err, &herr) && herr.Status == nethttp.StatusUnauthorized {
			return "", fmt.Errorf("%w: the signup key was refused (give the deployment's BRIDGE_SIGNUP_KEY with --signup-key or BRIDGE_SMOKE_SIGNUP_KEY)", err)
		}
		return "", err
	}
	c.apiKey, c.keyID, c.account = a.APIKey, a.KeyID, a.AccountID
	return fmt.Sprintf("account %s created with API key %s", a.AccountID, a.KeyID), nil
}

// bridge creates the smoke bridge: relaycc body, replies on, forward
// target the deployment's /canary.
func (c *check) bridge(ctx context.Context) (string, error) {
	req := map[string]any{
		"name": "smoke " + c.nonce,
		"forward": map[string]any{
			"url": c.cfg.ForwardURL, "bodyFormat": "relaycc", "replyMode": "reply", "timeoutMs": 10000,
		},
	}
	var b bridgeCreated
	if err := c.call(ctx, nethttp.MethodPost, "/v1/bridges", c.apiKey, req, nethttp.StatusCreated, &b); err != nil {
		return "", err
	}
	c.bridgeID, c.address = b.ID, b.Address
	return fmt.Sprintf("bridge %s at %s forwards to %s", b.ID, b.Address, c.cfg.ForwardURL), nil
}

// cleanup deletes the bridge and revokes the account's API key. The API
// has no way to delete an account, so the account stays, empty and with
// no usable key; the line says so.
func (c *check) cleanup(ctx context.Context) (string, error) {
	if c.apiKey == "" {
		return "nothing to delete", nil
	}
	var done []string
	var errs []error
	if c.bridgeID != "" {
		if err := c.call(ctx, nethttp.MethodDelete, "/v1/bridges/"+url.PathEscape(c.bridgeID), c.apiKey, nil, nethttp.StatusOK, nil); err != nil {
			errs = append(errs, fmt.Errorf("delete bridge %s: %w", c.bridgeID, err))
		} else {
			done = append(done, "bridge "+c.bridgeID+" deleted")
		}
	}
	if err := c.call(ctx, nethttp.MethodDelete, "/v1/api-keys/"+url.PathEscape(c.keyID), c.apiKey, nil, nethttp.StatusOK, nil); err != nil {
		errs = append(errs, fmt.Errorf("revoke API key %s: %w", c.keyID, err))
	} else {
		done = append(done, "API key revoked")
	}
	if err := errors.Join(errs...); err != nil {
		return "", err
	}
	return strings.Join(done, ", ") + "; the API cannot delete accounts, so account " + c.account +
		" (\"smoke " + c.nonce + "\") stays without bridges or usable keys", nil
}
