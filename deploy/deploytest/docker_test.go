package deploytest

import (
	"bufio"
	"bytes"
	"debug/elf"
	"fmt"
	"github.com/xmtpbridge/bridge/internal/testkit"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// dockerInstr is one instruction of a Dockerfile.
type dockerInstr struct {
	line int
	cmd  string // upper case: FROM, RUN, ...
	args string // the rest, continuation lines joined
}

// dockerStage is one FROM ... stage.
type dockerStage struct {
	base, name string
	instrs     []dockerInstr
}

// parseDockerfile splits a Dockerfile into stages of instructions. It
// joins lines ending in a backslash and drops comments and parser
// directives; it does not expand ARGs.
func parseDockerfile(src []byte) ([]dockerStage, error) {
	var stages []dockerStage
	sc := bufio.NewScanner(bytes.NewReader(src))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	lineNo, start := 0, 0
	var cur strings.Builder
	flush := func() error {
		text := strings.TrimSpace(cur.String())
		cur.Reset()
		if text == "" {
			return nil
		}
		cmd, args, _ := strings.Cut(text, " ")
		cmd = strings.ToUpper(cmd)
		args = strings.TrimSpace(args)
		if !regexp.MustCompile(`^[A-Z]+$`).MatchString(cmd) {
			return fmt.Errorf("line %d: %q is not an instruction", start, cmd)
		}
		in := dockerInstr{line: start, cmd: cmd, args: args}
		if cmd == "FROM" {
			f := strings.Fields(args)
			var st dockerStage
			for len(f) > 0 && strings.HasPrefix(f[0], "--") {
				f = f[1:]
			}
			switch {
			case len(f) == 1:
				st.base = f[0]
			case len(f) == 3 && strings.EqualFold(f[1], "AS"):
				st.base, st.name = f[0], f[2]
			default:
				return fmt.Errorf("line %d: FROM %s: want FROM image [AS name]", start, args)
			}
			stages = append(stages, st)
			return nil
		}
		if len(stages) == 0 {
			if cmd == "ARG" {
				return nil
			}
			return fmt.Errorf("line %d: %s before the first FROM", start, cmd)
		}
		s := &stages[len(stages)-1]
		s.instrs = append(s.instrs, in)
		return nil
	}
	for sc.Scan() {
		lineNo++
		line := sc.Text()
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "#") {
			continue
		}
		if cur.Len() == 0 {
			start = lineNo
		}
		if strings.HasSuffix(trimmed, "\\") {
			cur.WriteString(strings.TrimSuffix(trimmed, "\\"))
			cur.WriteString(" ")
			continue
		}
		cur.WriteString(trimmed)
		if err := flush(); err != nil {
			return nil, err
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if cur.Len() > 0 {
		return nil, fmt.Errorf("line %d: the file ends inside a continued line", start)
	}
	if len(stages) == 0 {
		return nil, fmt.Errorf("no FROM instruction")
	}
	return stages, nil
}

// last returns the last instruction cmd of the stage, if any.
func (s dockerStage) last(cmd string) (dockerInstr, bool) {
	for i := len(s.instrs) - 1; i >= 0; i-- {
		if s.instrs[i].cmd == cmd {
			return s.instrs[i], true
		}
	}
	return dockerInstr{}, false
}

// makeVar returns the value of a `NAME := value` line of the Makefile.
func makeVar(t *testing.T, name string) string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(repoRoot, "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^` + name + `\s*:?=\s*(.*)$`).FindSubmatch(raw)
	if m == nil {
		t.Fatalf("Makefile has no %s variable", name)
	}
	return strings.TrimSpace(string(m[1]))
}

func TestDockerfile(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(repoRoot, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	stages, err := parseDockerfile(raw)
	if err != nil {
		t.Fatalf("parse Dockerfile: %v", err)
	}
	if len(stages) < 2 {
		t.Fatalf("Dockerfile has %d stage(s), want a build stage and a final stage", len(stages))
	}
	build, final := stages[0], stages[len(stages)-1]

	// The builder is the Go of go.mod.
	gomod, err := os.ReadFile(filepath.Join(repoRoot, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	goVersion := regexp.MustCompile(`(?m)^go (\S+)$`).FindSubmatch(gomod)
	if goVersion == nil {
		t.Fatal("go.mod has no go line")
	}
	if want := "golang:" + string(goVersion[1]); !strings.HasPrefix(build.base, want) {
		t.Errorf("build stage FROM %s, want %s (the go line of go.mod)", build.base, want)
	}
	if build.name == "" {
		t.Errorf("build stage FROM %s has no AS name for COPY --from", build.base)
	}

	// CGO_ENABLED=0, -trimpath and the Makefile's version flags.
	var buildText strings.Builder
	for _, in := range build.instrs {
		buildText.WriteString(in.cmd + " " + in.args + "\n")
	}
	bt := buildText.String()
	if !regexp.MustCompile(`(^|\s)CGO_ENABLED=0(\s|$)`).MatchString(bt) {
		t.Errorf("build stage does not set CGO_ENABLED=0")
	}
	goBuild := regexp.MustCompile(`(?m)^RUN .*\bgo build\b.*$`).FindString(bt)
	if goBuild == "" {
		t.Fatalf("build stage has no RUN ... go build")
	}
	for _, want := range []string{"-trimpath", "./cmd/bridge"} {
		if !strings.Contains(goBuild, want) {
			t.Errorf("go build in the Dockerfile lacks %s: %s", want, goBuild)
		}
	}
	for _, flag := range regexp.MustCompile(`-X (\S+)=`).FindAllStringSubmatch(makeVar(t, "LDFLAGS"), -1) {
		if !strings.Contains(goBuild, "-X "+flag[1]+"=") {
			t.Errorf("go build in the Dockerfile does not stamp %s as the Makefile's LDFLAGS do: %s", flag[1], goBuild)
		}
	}
	out := regexp.MustCompile(`-o (\S+)`).FindStringSubmatch(goBuild)
	if out == nil {
		t.Fatalf("go build in the Dockerfile has no -o: %s", goBuild)
	}

	// The final stage: a distroless static or scratch base, the binary
	// copied from the build stage, a non-root user, /bridge as entry point.
	if !strings.HasPrefix(final.base, "gcr.io/distroless/static") && final.base != "scratch" {
		t.Errorf("final stage FROM %s, want gcr.io/distroless/static... or scratch", final.base)
	}
	copied := false
	for _, in := range final.instrs {
		if in.cmd == "COPY" && strings.Contains(in.args, "--from="+build.name) && strings.Contains(in.args, out[1]) &&
			strings.HasSuffix(in.args, " /bridge") {
			copied = true
		}
	}
	if !copied {
		t.Errorf("final stage does not COPY --from=%s %s /bridge", build.name, out[1])
	}
	user, ok := final.last("USER")
	if !ok {
		t.Fatal("final stage has no USER: the image would run as root")
	}
	name, _, _ := strings.Cut(user.args, ":")
	if name == "" || name == "root" || name == "0" {
		t.Errorf("final stage USER %s is root", user.args)
	}
	if !regexp.MustCompile(`^[0-9]+$`).MatchString(name) {
		t.Errorf("final stage USER %s is not numeric: Kubernetes' runAsNonRoot cannot check a name", user.args)
	}
	if ep, _ := final.last("ENTRYPOINT"); ep.args != `["/bridge"]` {
		t.Errorf(`final stage ENTRYPOINT %s, want ["/bridge"]`, ep.args)
	}
	if cmd, _ := final.last("CMD"); cmd.args != `["node"]` {
		t.Errorf(`final stage CMD %s, want ["node"]`, cmd.args)
	}
	expose, _ := final.last("EXPOSE")
	for _, port := range []string{"8080", "6340"} {
		if !strings.Contains(" "+expose.args+" ", " "+port+" ") {
			t.Errorf("final stage EXPOSE %q lacks %s", expose.args, port)
		}
	}
	if _, ok := final.last("HEALTHCHECK"); ok {
		t.Errorf("final stage has a HEALTHCHECK, but the distroless image has no shell or curl to run it")
	}

	// The build context leaves out what the image must not carry.
	ignore, err := os.ReadFile(filepath.Join(repoRoot, ".dockerignore"))
	if err != nil {
		t.Fatalf(".dockerignore: %v", err)
	}
	for _, want := range []string{".git", ".data", "bin", "**/node_modules"} {
		if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(want) + `$`).Match(ignore) {
			t.Errorf(".dockerignore does not leave out %s", want)
		}
	}
}

// TestStaticBinary checks the binary TestMain built with the Dockerfile's
// settings: no program interpreter and no dynamic section, so it runs on
// distroless static or scratch, and the version flags took effect.
func TestStaticBinary(t *testing.T) {
	f, err := elf.Open(testkit.BuildBridge(t, dockerBuild))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		switch p.Type {
		case elf.PT_INTERP:
			t.Errorf("the CGO_ENABLED=0 binary has a PT_INTERP segment: it needs a dynamic loader")
		case elf.PT_DYNAMIC:
			t.Errorf("the CGO_ENABLED=0 binary has a PT_DYNAMIC segment: it is dynamically linked")
		}
	}
	if libs, _ := f.ImportedLibraries(); len(libs) > 0 {
		t.Errorf("the CGO_ENABLED=0 binary imports shared libraries %v", libs)
	}
	out, err := exec.Command(testkit.BuildBridge(t, dockerBuild), "version").CombinedOutput()
	if err != nil {
		t.Fatalf("bridge version: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), buildVersion) || !strings.Contains(string(out), "deploytest") {
		t.Errorf("bridge version printed %q, want the stamped version %s and commit deploytest", out, buildVersion)
	}
}

func FuzzParseDockerfile(f *testing.F) {
	if raw, err := os.ReadFile(filepath.Join(repoRoot, "Dockerfile")); err == nil {
		f.Add(raw)
	}
	f.Add([]byte("FROM a AS b\nRUN x \\\n  y\nFROM c\nUSER 1\n"))
	f.Add([]byte("RUN x\n"))
	f.Fuzz(func(t *testing.T, src []byte) {
		stages, err := parseDockerfile(src)
		if err != nil {
			return
		}
		if len(stages) == 0 {
			t.Fatalf("no error and no stage for %q", src)
		}
		for _, s := range stages {
			if s.base == "" {
				t.Fatalf("a stage without a base image for %q", src)
			}
		}
	})
}
