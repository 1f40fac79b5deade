package apiclient

import (
	"os"
	"testing"

	"github.com/xmtpbridge/bridge/internal/testkit"
)

// TestTypesMatchTheOpenAPIDocument: the client mirrors the API's JSON on
// purpose, in its own types, so that the CLI does not import the server.
// This keeps the two from drifting: each type's JSON fields are exactly
// the properties of its schema in http/openapi.json, the document the
// server's own tests check its routes against, both ways.
func TestTypesMatchTheOpenAPIDocument(t *testing.T) {
	doc, err := os.ReadFile("../../http/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	testkit.MatchSchemas(t, doc, map[string]any{
		"Account": Account{}, "APIKey": APIKey{}, "Forward": Forward{}, "Bridge": Bridge{},
		"Subscriptions": Subscriptions{}, "Delivery": Delivery{}, "DeliveryAttempt": Attempt{},
		"SentMessage": SentMessage{}, "Plugin": Plugin{}, "PluginBinding": Binding{},
		"Subscriber": Subscriber{}, "BroadcastStatus": Broadcast{},
	})
}
