package deploytest

import (
	"bufio"
	"bytes"
	"fmt"
	"regexp"
	"strings"
	"testing"
)

// envEntry is one NAME=value line of an env file.
type envEntry struct {
	line        int
	name, value string
}

var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// parseEnvFile reads an env file in the format docker compose's --env-file
// and systemd's EnvironmentFile share for simple values: NAME=value lines,
// blank lines and # comments. A value may be wrapped in single or double
// quotes; nothing is expanded. comments returns the comment lines' text.
func parseEnvFile(src []byte) (entries []envEntry, comments []string, err error) {
	sc := bufio.NewScanner(bytes.NewReader(src))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	seen := map[string]int{}
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "":
			continue
		case strings.HasPrefix(line, "#"):
			comments = append(comments, line)
			continue
		}
		name, value, ok := strings.Cut(line, "=")
		if !ok {
			return nil, nil, fmt.Errorf("line %d: want NAME=value, got %q", n, line)
		}
		if !envName.MatchString(name) {
			return nil, nil, fmt.Errorf("line %d: %q is not a variable name", n, name)
		}
		if prev, dup := seen[name]; dup {
			return nil, nil, fmt.Errorf("line %d: %s is already set on line %d", n, name, prev)
		}
		seen[name] = n
		if len(value) >= 2 && (value[0] == '"' || value[0] == '\'') {
			if value[len(value)-1] != value[0] {
				return nil, nil, fmt.Errorf("line %d: %s: the quote is not closed", n, name)
			}
			value = value[1 : len(value)-1]
		}
		entries = append(entries, envEntry{line: n, name: name, value: value})
	}
	if err := sc.Err(); err != nil {
		return nil, nil, err
	}
	return entries, comments, nil
}

// interpolate expands compose's ${NAME}, ${NAME:-default}, ${NAME-default},
// ${NAME:?message}, ${NAME?message} and $NAME in s from vars; $$ is a
// literal $. A missing variable with ? is an error.
func interpolate(s string, vars map[string]string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '$' {
			b.WriteByte(c)
			continue
		}
		if i+1 >= len(s) {
			return "", fmt.Errorf("a lone $ at the end of %q", s)
		}
		switch next := s[i+1]; {
		case next == '$':
			b.WriteByte('$')
			i++
		case next == '{':
			end := strings.IndexByte(s[i+2:], '}')
			if end < 0 {
				return "", fmt.Errorf("${ is not closed in %q", s)
			}
			expr := s[i+2 : i+2+end]
			i += 2 + end
			v, err := expand(expr, vars)
			if err != nil {
				return "", err
			}
			b.WriteString(v)
		default:
			j := i + 1
			for j < len(s) && (s[j] == '_' || s[j] >= 'A' && s[j] <= 'Z' || s[j] >= 'a' && s[j] <= 'z' || j > i+1 && s[j] >= '0' && s[j] <= '9') {
				j++
			}
			if j == i+1 {
				return "", fmt.Errorf("a $ that starts no variable in %q (write $$ for a literal $)", s)
			}
			b.WriteString(vars[s[i+1:j]])
			i = j - 1
		}
	}
	return b.String(), nil
}

// expand evaluates the inside of one ${...}.
func expand(expr string, vars map[string]string) (string, error) {
	name := expr
	op, arg := "", ""
	if k := strings.IndexAny(expr, ":-?"); k >= 0 {
		name = expr[:k]
		rest := expr[k:]
		switch {
		case strings.HasPrefix(rest, ":-"), strings.HasPrefix(rest, ":?"):
			op, arg = rest[:2], rest[2:]
		case rest[0] == '-', rest[0] == '?':
			op, arg = rest[:1], rest[1:]
		default:
			return "", fmt.Errorf("${%s}: unknown operator", expr)
		}
	}
	if !envName.MatchString(name) {
		return "", fmt.Errorf("${%s}: %q is not a variable name", expr, name)
	}
	v, set := vars[name]
	switch op {
	case "":
		return v, nil
	case ":-":
		if v == "" {
			return arg, nil
		}
	case "-":
		if !set {
			return arg, nil
		}
	case ":?":
		if v == "" {
			return "", fmt.Errorf("%s is required: %s", name, arg)
		}
	case "?":
		if !set {
			return "", fmt.Errorf("%s is required: %s", name, arg)
		}
	}
	return v, nil
}

func TestParseEnvFile(t *testing.T) {
	entries, comments, err := parseEnvFile([]byte("# c\n\nA=1\nB=\"x y\"\nC='z'\nD=\n"))
	if err != nil {
		t.Fatal(err)
	}
	got := fmt.Sprint(entries)
	if want := "[{3 A 1} {4 B x y} {5 C z} {6 D }]"; got != want {
		t.Errorf("entries %s, want %s", got, want)
	}
	if len(comments) != 1 {
		t.Errorf("comments %q", comments)
	}
	for _, bad := range []string{"A", "1A=2", "A=1\nA=2", "A=\"x", "A B=1"} {
		if _, _, err := parseEnvFile([]byte(bad)); err == nil {
			t.Errorf("parseEnvFile(%q): no error", bad)
		}
	}
}

func TestInterpolate(t *testing.T) {
	vars := map[string]string{"A": "a", "E": ""}
	for in, want := range map[string]string{
		"x${A}y": "xay", "${A:-d}": "a", "${E:-d}": "d", "${E-d}": "", "${U-d}": "d", "$A/$$": "a/$", "${A:?m}": "a",
	} {
		got, err := interpolate(in, vars)
		if err != nil || got != want {
			t.Errorf("interpolate(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"${E:?m}", "${U?m}", "${A", "$", "$-", "${1x}", "${A:x}"} {
		if _, err := interpolate(bad, vars); err == nil {
			t.Errorf("interpolate(%q): no error", bad)
		}
	}
}

func FuzzParseEnvFile(f *testing.F) {
	f.Add([]byte("# c\nA=1\nB=\"x\"\n"))
	f.Add([]byte("A=\nA=1"))
	f.Fuzz(func(t *testing.T, src []byte) {
		entries, _, err := parseEnvFile(src)
		if err != nil {
			return
		}
		for _, e := range entries {
			if !envName.MatchString(e.name) {
				t.Fatalf("entry with a bad name %q from %q", e.name, src)
			}
		}
	})
}

func FuzzInterpolate(f *testing.F) {
	f.Add("postgres://u:${P:?set P}@h/db")
	f.Add("$$ $A ${B-x} ${C:-y}")
	f.Fuzz(func(t *testing.T, s string) {
		out, err := interpolate(s, map[string]string{"A": "1", "P": "p"})
		if err == nil && !strings.Contains(s, "$") && out != s {
			t.Fatalf("interpolate changed %q without a $ to %q", s, out)
		}
	})
}
