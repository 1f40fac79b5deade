package deploytest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"testing"

	"gopkg.in/yaml.v3"
)

// loadYAML parses every document of the YAML file at path. Anchors and
// merge keys (<<) are resolved, as compose and kubectl resolve them.
func loadYAML(t testing.TB, path string) []any {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	docs, err := parseYAMLDocs(raw)
	if err != nil {
		t.Fatalf("parse %s as YAML: %v", path, err)
	}
	return docs
}

// parseYAMLDocs decodes every non-empty document of a YAML stream.
func parseYAMLDocs(raw []byte) ([]any, error) {
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	var docs []any
	for {
		var doc any
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			return nil, err
		}
		if doc != nil {
			docs = append(docs, doc)
		}
	}
}

// loadYAMLMap parses a YAML file that holds one mapping.
func loadYAMLMap(t testing.TB, path string) map[string]any {
	t.Helper()
	docs := loadYAML(t, path)
	if len(docs) != 1 {
		t.Fatalf("%s: %d YAML documents, want 1", path, len(docs))
	}
	m, ok := docs[0].(map[string]any)
	if !ok {
		t.Fatalf("%s: the document is a %T, want a mapping", path, docs[0])
	}
	return m
}

// get walks a parsed YAML tree by keys (for mappings) and indexes (ints,
// for sequences) and returns nil when the path does not exist.
func get(v any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, ok := v.(map[string]any)
			if !ok {
				return nil
			}
			v = m[k]
		case int:
			s, ok := v.([]any)
			if !ok || k < 0 || k >= len(s) {
				return nil
			}
			v = s[k]
		default:
			panic(fmt.Sprintf("get: path element %v is a %T", p, p))
		}
	}
	return v
}

// str returns the string at path, or "" when it is missing or not a string.
func str(v any, path ...any) string {
	s, _ := get(v, path...).(string)
	return s
}

// scalar formats the scalar at path as YAML would print it ("" if missing).
func scalar(v any, path ...any) string {
	switch x := get(v, path...).(type) {
	case nil:
		return ""
	case string:
		return x
	default:
		return fmt.Sprint(x)
	}
}

// mapAt returns the mapping at path, or nil.
func mapAt(v any, path ...any) map[string]any {
	m, _ := get(v, path...).(map[string]any)
	return m
}

// listAt returns the sequence at path, or nil.
func listAt(v any, path ...any) []any {
	s, _ := get(v, path...).([]any)
	return s
}

// stringList returns the sequence at path as strings (non-strings
// formatted).
func stringList(v any, path ...any) []string {
	var out []string
	for i := range listAt(v, path...) {
		out = append(out, scalar(v, append(append([]any{}, path...), i)...))
	}
	return out
}

func TestParseYAMLDocs(t *testing.T) {
	docs, err := parseYAMLDocs([]byte("a: &x {b: 1}\nc:\n  <<: *x\n  d: \"80:80\"\n---\n---\n- e\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(docs) != 2 || scalar(docs[0], "c", "b") != "1" || str(docs[0], "c", "d") != "80:80" || str(docs[1], 0) != "e" {
		t.Errorf("parsed %v", docs)
	}
	if _, err := parseYAMLDocs([]byte("a: [1,\n")); err == nil {
		t.Error("no error for an unclosed sequence")
	}
}
