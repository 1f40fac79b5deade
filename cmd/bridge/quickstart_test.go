package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/xmtpbridge/bridge/internal/testkit"
	"github.com/xmtpbridge/bridge/persistence/pgtest"
	"github.com/xmtpbridge/bridge/system"
)

var updateReadme = flag.Bool("update-readme", false, "rewrite README.md's quick start from cmd/bridge/quickstart.tmpl (make readme-quickstart)")

const (
	readmeQuickStartBegin = "<!-- quickstart:begin"
	readmeQuickStartEnd   = "<!-- quickstart:end -->"
	bannerStepsHeading    = "Quick start: paste these into bash in another terminal, at the repository root:"
)

// readmeQuickStartBlock splits README.md around its quick start: what
// precedes the code block, the steps inside it, and what follows.
func readmeQuickStartBlock(readme string) (before, steps, after string, err error) {
	b := strings.Index(readme, readmeQuickStartBegin)
	e := strings.Index(readme, readmeQuickStartEnd)
	if b < 0 || e < b {
		return "", "", "", fmt.Errorf("README.md has no %q … %q section", readmeQuickStartBegin, readmeQuickStartEnd)
	}
	nl := strings.Index(readme[b:], "\n")
	before, inner, after := readme[:b+nl+1], readme[b+nl+1:e], readme[e:]
	body, ok := strings.CutPrefix(inner, "```sh\n")
	if !ok || !strings.HasSuffix(body, "```\n") {
		return "", "", "", fmt.Errorf("README.md's quick start is not one ```sh block")
	}
	return before, strings.TrimSuffix(body, "```\n"), after, nil
}

// TestReadmeQuickStartIsTheTemplate checks that README.md's quick start is
// the template's steps with the README's values; with -update-readme
// (`make readme-quickstart`) it rewrites the section instead.
func TestReadmeQuickStartIsTheTemplate(t *testing.T) {
	raw, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	before, steps, after, err := readmeQuickStartBlock(string(raw))
	if err != nil {
		t.Fatal(err)
	}
	want, err := readmeQuickStartSteps()
	if err != nil {
		t.Fatal(err)
	}
	if *updateReadme {
		if err := os.WriteFile("../../README.md", []byte(before+"```sh\n"+want+"```\n"+after), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	if steps != want {
		t.Fatalf("README.md's quick start differs from cmd/bridge/quickstart.tmpl; run `make readme-quickstart`. It should be:\n%s", want)
	}
	noPlaceholders(t, "README.md's quick start", want)
	if _, err := os.Stat("../../docs/webhooks.md"); err != nil || !strings.Contains(want, "docs/webhooks.md") {
		t.Errorf("the quick start does not point at the webhook contract in docs/webhooks.md: %v", err)
	}
}

// noPlaceholders fails the test if a command (not a comment) of steps
// keeps something to fill in by hand.
func noPlaceholders(t *testing.T, what, steps string) {
	t.Helper()
	for _, line := range strings.Split(steps, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "#") {
			continue
		}
		for _, p := range []string{"<", "…", "...", "0xTHE", "RECIPIENT", "BRIDGE_ID=x", "sk_x"} {
			if strings.Contains(line, p) {
				t.Errorf("%s keeps the placeholder %q: %s", what, p, line)
			}
		}
	}
}

// step is one command of the printed quick start and the step (the
// number of the "# N." comment above it) it belongs to; 0 is the set-up
// before step 1.
type step struct {
	n    int
	text string
}

var stepHeading = regexp.MustCompile(`^# ?(\d+)\. `)

// parseSteps reads the commands of the banner's steps, dedented: comment
// lines are skipped and a line ending in a backslash continues.
func parseSteps(block string) []step {
	var out []step
	n, cur := 0, ""
	for _, line := range strings.Split(block, "\n") {
		line = strings.TrimPrefix(line, "  ")
		if cur == "" {
			if m := stepHeading.FindStringSubmatch(line); m != nil {
				n, _ = strconv.Atoi(m[1])
			}
			if strings.TrimSpace(line) == "" || strings.HasPrefix(line, "#") {
				continue
			}
		}
		cur += line + "\n"
		if !strings.HasSuffix(line, `\`) {
			out = append(out, step{n: n, text: cur})
			cur = ""
		}
	}
	return out
}

// TestQuickStartAsPrinted starts the real `bridge dev` in a directory laid
// out like the repository (bin/bridge, xmtp/interop/js), reads the quick
// start it prints and runs every command of it, as printed, in one bash
// (the terminal the steps are pasted into), with the listener of step 1
// as a process of its own, and checks each step's answer: the account, the
// bridge and its address, the reply xmtp-js gets (from the CLI's bridge
// and the curl one), the deliveries with their text, the messages sent as
// the bridge reaching the listener, the relaycc signup, and the node's
// endpoints.
func TestQuickStartAsPrinted(t *testing.T) {
	js, err := filepath.Abs("../../xmtp/interop/js")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(js, "node_modules", "@xmtp", "xmtp-js", "package.json")); err != nil {
		t.Fatalf("xmtp-js is not installed: run scripts/ensure-node-deps.sh (make test does): %v", err)
	}
	if _, err := exec.LookPath("node"); err != nil {
		t.Fatalf("node is not on PATH: %v", err)
	}
	root := t.TempDir()
	for _, d := range []string{"bin", "xmtp/interop"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(bridgeBinary(t), filepath.Join(root, "bin", "bridge")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(js, filepath.Join(root, "xmtp", "interop", "js")); err != nil {
		t.Fatal(err)
	}

	// bridge dev, its stdout (the banner) and stderr (the log) together.
	url := pgtest.NewDatabase(t, pgtest.Template{Name: "cmd_bridge", Migrate: system.Migrate})
	dev := &process{t: t, cmd: exec.Command(filepath.Join(root, "bin", "bridge"), "dev"), exited: make(chan error, 1)}
	dev.cmd.Dir = root
	dev.cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + root, "DATABASE_URL=" + url,
		"BRIDGE_HTTP_ADDR=127.0.0.1:0", "BRIDGE_XMTP_NODE_GRPC_ADDR=127.0.0.1:0", "BRIDGE_XMTP_NODE_HTTP_ADDR=127.0.0.1:0",
		"BRIDGE_LOG_FORMAT=json", "BRIDGE_SHUTDOWN_TIMEOUT=10s"}
	dev.cmd.Stdout, dev.cmd.Stderr = &dev.out, &dev.out
	if err := dev.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { dev.exited <- dev.cmd.Wait() }()
	t.Cleanup(func() {
		if dev.cmd.ProcessState == nil {
			dev.cmd.Process.Kill()
		}
	})
	api := "http://" + dev.waitLog("node started")["http_addr"]
	signupKey := dev.printed("dev: signup key, kept in .data/dev-signup-key: ")

	// The banner: its steps are as many lines as the template's.
	template, err := readmeQuickStartSteps()
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Count(template, "\n")
	var block string
	testkit.WaitFor(t, 30*time.Second, func() bool {
		_, rest, ok := strings.Cut(dev.out.String(), bannerStepsHeading+"\n\n")
		ls := strings.SplitAfter(rest, "\n")
		if !ok || len(ls) < lines+1 {
			return false
		}
		block = strings.Join(ls[:lines], "")
		return true
	}, "the quick start's %d lines", lines)
	noPlaceholders(t, "the printed quick start", block)
	if strings.Contains(block, "$(cat .data") {
		t.Errorf("the printed quick start reads the signup key from a file instead of showing it:\n%s", block)
	}
	if !strings.Contains(block, api) || !strings.Contains(block, "SIGNUP_KEY='"+signupKey+"'") || !strings.Contains(block, "docs/webhooks.md") {
		t.Fatalf("the quick start lacks the real API, the signup key or the webhook docs:\n%s", block)
	}
	steps := parseSteps(block)

	sh := startShell(t, root)
	var listener *testkit.Buffer
	var stopListener func()
	var listenStep, listenAddr, bridge string
	listen := func() string {
		var addr string
		listener, stopListener = startListener(t, root, listenStep)
		testkit.WaitFor(t, 45*time.Second, func() bool {
			addr = jsonField(listener.String(), "ready", "address")
			return addr != ""
		}, "the listener's address")
		return addr
	}
	checked := map[int]bool{}
	for _, s := range steps {
		if s.n == 7 && !checked[7] {
			// A second run of step 1 is the same identity, and it still
			// receives what is sent to its address.
			stopListener()
			if again := listen(); again != listenAddr {
				t.Fatalf("the listener's address changed from %s to %s across runs", listenAddr, again)
			}
		}
		checked[s.n] = true
		if strings.Contains(s.text, "quickstart.cjs listen ") {
			listenStep = s.text
			listenAddr = listen()
			continue
		}
		out := sh.run(s.text)
		switch s.n {
		case 0:
			sh.expect(s, out, "")
		case 2:
			sh.expect(s, out, "created account me")
			sh.expect(s, out, "logged in to "+api)
		case 3:
			if strings.HasPrefix(s.text, "BRIDGE=") {
				bridge = sh.variable("BRIDGE")
				if !strings.Contains(sh.run("bin/bridge bridges get echo"), bridge) {
					t.Fatalf("$BRIDGE %q is not the bridge's address", bridge)
				}
			} else {
				sh.expect(s, out, "webhook secret")
				sh.expect(s, out, "whsec_")
			}
		case 4:
			sh.expect(s, out, `"event":"reply"`)
			sh.expect(s, out, `"text":"Hello from the proxied server! Your message was: hello"`)
		case 5:
			sh.eventually(s, "succeeded", "hello")
		case 6:
			sh.expect(s, out, "accepted: bridge echo sends it to "+listenAddr)
			waitReceived(t, listener, bridge, "hi from the bridge")
		case 7:
			if key := sh.variable("API_KEY"); !strings.HasPrefix(key, "xbk_") {
				t.Fatalf("$API_KEY after step 7 is %q", key)
			}
		case 8:
			switch {
			case strings.HasPrefix(s.text, "echo"):
				sh.expect(s, out, `"webhookSecret":"whsec_`)
				sh.expect(s, out, `"replyMode":"reply"`)
			case strings.HasPrefix(s.text, "BRIDGE_ID="):
				bridge = sh.variable("BRIDGE")
				if sh.variable("BRIDGE_ID") == "" || !regexp.MustCompile(`^0x[0-9a-fA-F]{40}$`).MatchString(bridge) {
					t.Fatalf("step 8 set BRIDGE_ID %q, BRIDGE %q", sh.variable("BRIDGE_ID"), bridge)
				}
			case strings.HasPrefix(s.text, "node"):
				sh.expect(s, out, `"text":"Hello from the proxied server! Your message was: hello"`)
			default:
				sh.expect(s, out, "")
			}
		case 9:
			if strings.Contains(s.text, "/deliveries") {
				sh.eventually(s, `"status":"succeeded"`, `"text":"hello"`)
			} else {
				sh.expect(s, out, `"messageId"`)
				waitReceived(t, listener, bridge, "hi from curl")
			}
		case 10:
			sh.expect(s, out, `"ok":true`)
			sh.expect(s, out, `"hookToken":"xbh_`)
		case 11:
			switch {
			case strings.Contains(s.text, "identities"):
				sh.expect(s, out, dev.printedAPIIdentity())
			case strings.Contains(s.text, "readyz"):
				sh.expect(s, out, `"ok":true`)
			default:
				sh.expect(s, out, "bridge_canary_")
			}
		default:
			t.Fatalf("the quick start has a step %d this test does not check:\n%s", s.n, s.text)
		}
	}
	for n := 0; n <= 11; n++ {
		if !checked[n] {
			t.Errorf("the printed quick start has no step %d", n)
		}
	}
	dev.terminate()
}

// printedAPIIdentity is the API identity's address from the banner's header.
func (p *process) printedAPIIdentity() string {
	m := regexp.MustCompile(`API identity\s+(0x[0-9a-fA-F]{40})`).FindStringSubmatch(p.out.String())
	if m == nil {
		p.t.Fatalf("the banner names no API identity:\n%s", p.out.String())
	}
	return m[1]
}

// shell is one bash that the steps are pasted into: it sources each step
// from a file, with stdin from /dev/null, so variables and functions carry
// over from step to step as in a terminal.
type shell struct {
	t    *testing.T
	dir  string
	in   *os.File
	out  testkit.Buffer
	runs int
}

func startShell(t *testing.T, root string) *shell {
	t.Helper()
	s := &shell{t: t, dir: t.TempDir()}
	cmd := exec.Command("bash", "--noprofile", "--norc", "-c",
		`exec 3<&0 </dev/null; while IFS= read -r f <&3; do . "$f"; printf '\n@@done %s\n' "$?"; done`)
	cmd.Dir = root
	// xmtp-js gives up on a reply before the step's own wait does.
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + root, "QUICKSTART_TIMEOUT_MS=40000"}
	cmd.Stdout, cmd.Stderr = &s.out, &s.out
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdin, s.in = r, w
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	r.Close()
	t.Cleanup(func() { w.Close(); cmd.Process.Kill(); cmd.Wait() })
	return s
}

// run pastes text and returns what it printed and its exit status.
func (s *shell) run(text string) string {
	s.t.Helper()
	out, code := s.runStatus(text)
	if code != 0 {
		s.t.Fatalf("the step\n%s\nexits %d:\n%s", text, code, out)
	}
	return out
}

func (s *shell) runStatus(text string) (string, int) {
	s.t.Helper()
	s.runs++
	began := time.Now()
	defer func() {
		s.t.Logf("%s: %s", time.Since(began).Round(10*time.Millisecond), strings.SplitN(text, "\n", 2)[0])
	}()
	f := filepath.Join(s.dir, fmt.Sprintf("step-%d.sh", s.runs))
	if err := os.WriteFile(f, []byte(text), 0o600); err != nil {
		s.t.Fatal(err)
	}
	start := len(s.out.String())
	if _, err := fmt.Fprintln(s.in, f); err != nil {
		s.t.Fatal(err)
	}
	done := regexp.MustCompile(`\n@@done (\d+)\n`)
	var out string
	code := -1
	testkit.WaitFor(s.t, 60*time.Second, func() bool {
		all := s.out.String()[start:]
		m := done.FindStringSubmatchIndex(all)
		if m == nil {
			return false
		}
		out = all[:m[0]]
		code, _ = strconv.Atoi(all[m[2]:m[3]])
		return true
	}, "the step\n%s\nto end; it printed:\n%s", text, testkit.Tail(s.out.String()[start:], 2000))
	return out, code
}

// expect fails the test unless the step's output holds want.
func (s *shell) expect(st step, out, want string) {
	s.t.Helper()
	if !strings.Contains(out, want) {
		s.t.Fatalf("step %d\n%s\nprinted no %q:\n%s", st.n, st.text, want, out)
	}
}

// eventually pastes the step again until its output holds every want: a
// delivery's status is written just after the reply is sent.
func (s *shell) eventually(st step, wants ...string) {
	s.t.Helper()
	testkit.WaitFor(s.t, 20*time.Second, func() error {
		out := s.run(st.text)
		for _, w := range wants {
			if !strings.Contains(out, w) {
				return fmt.Errorf("no %q in:\n%s", w, out)
			}
		}
		return nil
	}, "step %d\n%s\nto print %q", st.n, st.text, wants)
}

// variable is the value of a shell variable the steps set.
func (s *shell) variable(name string) string {
	s.t.Helper()
	return strings.TrimSpace(s.run(`printf '%s' "$` + name + `"`))
}

// startListener runs the listener's step, which leaves it running in the
// background, as its own bash in its own process group; stop (or the end
// of the test) kills the group.
func startListener(t *testing.T, root, text string) (out *testkit.Buffer, stop func()) {
	t.Helper()
	out = &testkit.Buffer{}
	cmd := exec.Command("bash", "--noprofile", "--norc", "-c", text)
	cmd.Dir = root
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + root}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	stop = func() { once.Do(func() { syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); cmd.Wait() }) }
	t.Cleanup(stop)
	return out, stop
}

// waitReceived waits for the listener to print a message with text from
// sender.
func waitReceived(t *testing.T, listener *testkit.Buffer, sender, text string) {
	t.Helper()
	testkit.WaitFor(t, 45*time.Second, func() error {
		for _, line := range strings.Split(listener.String(), "\n") {
			if strings.Contains(line, `"event":"message"`) && strings.Contains(line, `"text":`+strconv.Quote(text)) &&
				strings.Contains(strings.ToLower(line), `"sender":"`+strings.ToLower(sender)+`"`) {
				return nil
			}
		}
		return fmt.Errorf("it printed:\n%s", testkit.Tail(listener.String(), 2000))
	}, "the listener to print %q from %s", text, sender)
}

// jsonField returns field of the first JSON line of out whose event is
// event, or "".
func jsonField(out, event, field string) string {
	re := regexp.MustCompile(`"event":"` + event + `".*?"` + field + `":"([^"]*)"`)
	if m := re.FindStringSubmatch(out); m != nil {
		return m[1]
	}
	return ""
}
