package apiclient

import (
	"encoding/json"
	"os"
	"reflect"
	"sort"
	"strings"
	"testing"
)

// TestTypesMatchTheOpenAPIDocument: the client mirrors the API's JSON on
// purpose, in its own types, so that the CLI does not import the server.
// This keeps the two from drifting: each type's JSON fields are exactly
// the properties of its schema in http/openapi.json, the document the
// server's own tests check its routes against, both ways.
func TestTypesMatchTheOpenAPIDocument(t *testing.T) {
	raw, err := os.ReadFile("../../http/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Components struct {
			Schemas map[string]struct {
				Properties map[string]json.RawMessage `json:"properties"`
			} `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("decode openapi.json: %v", err)
	}
	for schema, v := range map[string]any{
		"Account": Account{}, "APIKey": APIKey{}, "Forward": Forward{}, "Bridge": Bridge{},
		"Subscriptions": Subscriptions{}, "Delivery": Delivery{}, "DeliveryAttempt": Attempt{},
		"SentMessage": SentMessage{}, "Plugin": Plugin{}, "PluginBinding": Binding{},
		"Subscriber": Subscriber{}, "BroadcastStatus": Broadcast{},
	} {
		s, ok := doc.Components.Schemas[schema]
		if !ok {
			t.Errorf("openapi.json has no schema %s", schema)
			continue
		}
		var want []string
		for p := range s.Properties {
			want = append(want, p)
		}
		sort.Strings(want)
		typ := reflect.TypeOf(v)
		var got []string
		for i := 0; i < typ.NumField(); i++ {
			name, _, _ := strings.Cut(typ.Field(i).Tag.Get("json"), ",")
			if name != "" && name != "-" {
				got = append(got, name)
			}
		}
		sort.Strings(got)
		if strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("%s (apiclient.%s) has JSON fields\n  %v\nbut the schema has\n  %v", schema, typ.Name(), got, want)
		}
	}
}
