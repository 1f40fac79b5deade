package testkit

import (
	"encoding/json"
	"reflect"
	"sort"
	"strings"
	"testing"
)

// SchemaProperties returns, for each schema under components/schemas of
// the OpenAPI document doc, the names of its properties, sorted.
func SchemaProperties(t testing.TB, doc []byte) map[string][]string {
	t.Helper()
	var d struct {
		Components struct {
			Schemas map[string]struct {
				Properties map[string]json.RawMessage `json:"properties"`
			} `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(doc, &d); err != nil {
		t.Fatalf("decode the OpenAPI document: %v", err)
	}
	out := make(map[string][]string, len(d.Components.Schemas))
	for name, s := range d.Components.Schemas {
		props := make([]string, 0, len(s.Properties))
		for p := range s.Properties {
			props = append(props, p)
		}
		sort.Strings(props)
		out[name] = props
	}
	return out
}

// JSONFields returns the JSON names of the fields of the struct v, sorted.
func JSONFields(v any) []string {
	typ := reflect.TypeOf(v)
	var names []string
	for i := 0; i < typ.NumField(); i++ {
		name, _, _ := strings.Cut(typ.Field(i).Tag.Get("json"), ",")
		if name != "" && name != "-" {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	return names
}

// MatchSchemas checks that each value's JSON fields are exactly the
// properties of its schema in the OpenAPI document doc, both ways.
func MatchSchemas(t testing.TB, doc []byte, bySchema map[string]any) {
	t.Helper()
	props := SchemaProperties(t, doc)
	for schema, v := range bySchema {
		want, ok := props[schema]
		if !ok {
			t.Errorf("the OpenAPI document has no schema %s", schema)
			continue
		}
		if got := JSONFields(v); strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("%s (%T) has JSON fields\n  %v\nbut the schema has\n  %v", schema, v, got, want)
		}
	}
}
