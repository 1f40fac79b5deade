package node

import (
	"context"
	"net/http"
	"testing"
	"time"

	messagev1 "github.com/xmtp/proto/v3/go/message_api/v1"
	"github.com/xmtpbridge/bridge/internal/testkit"
	"github.com/xmtpbridge/bridge/xmtp/keys"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

func TestAuthn(t *testing.T) {
	n := startNode(t, testDatabase(t), Config{Authn: true}, nil)
	c := dialNode(t, n.GRPCAddr())
	ctx := testkit.Context(t, 30*time.Second)

	me, err := keys.Generate()
	if err != nil {
		t.Fatalf("generate bundle: %v", err)
	}
	other, err := keys.Generate()
	if err != nil {
		t.Fatalf("generate bundle: %v", err)
	}
	token, err := me.AuthToken(time.Now())
	if err != nil {
		t.Fatalf("auth token: %v", err)
	}
	expired, err := me.AuthToken(time.Now().Add(-2 * time.Hour))
	if err != nil {
		t.Fatalf("auth token: %v", err)
	}
	withToken := func(tok string) context.Context {
		return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+tok)
	}
	pub := func(ctx context.Context, name string) codes.Code {
		_, err := c.Publish(ctx, &messagev1.PublishRequest{Envelopes: []*messagev1.Envelope{env(name, uint64(time.Now().UnixNano()), "x")}})
		return status.Code(err)
	}
	cases := []struct {
		name  string
		ctx   context.Context
		topic string
		want  codes.Code
	}{
		{"no token", ctx, "m-abc", codes.Unauthenticated},
		{"garbage token", withToken("bm90IGEgdG9rZW4="), "m-abc", codes.Unauthenticated},
		{"expired token", withToken(expired), "m-abc", codes.Unauthenticated},
		{"open topic", withToken(token), "m-abc", codes.OK},
		{"own contact", withToken(token), "contact-" + me.Address(), codes.OK},
		{"own private store", withToken(token), "privatestore-" + me.Address() + "/key_bundle", codes.OK},
		{"other contact", withToken(token), "contact-" + other.Address(), codes.PermissionDenied},
		{"other private store", withToken(token), "privatestore-" + other.Address() + "/key_bundle", codes.PermissionDenied},
		{"contact with a path", withToken(token), "contact-" + me.Address() + "/x", codes.PermissionDenied},
	}
	for _, tc := range cases {
		if got := pub(tc.ctx, tc.topic); got != tc.want {
			t.Errorf("%s: got %v want %v", tc.name, got, tc.want)
		}
	}
	// Reading needs no token.
	resp, err := c.Query(ctx, &messagev1.QueryRequest{ContentTopics: []string{topic("contact-" + me.Address())}})
	if err != nil || len(resp.Envelopes) != 1 {
		t.Fatalf("query without token: %v, %d envelopes", err, len(resp.GetEnvelopes()))
	}
	if got := metricValue(t, n.metrics.rejected.WithLabelValues(reasonUnauthenticated)); got != 3 {
		t.Errorf("unauthenticated rejections: got %v", got)
	}

	// Through the gateway the Authorization header reaches the check, and a
	// rejection carries the gRPC code that xmtp-js looks for (16).
	body := `{"envelopes":[{"contentTopic":"/xmtp/0/contact-` + me.Address() + `/proto","timestampNs":"7","message":"eA=="}]}`
	hresp := postJSON(t, ctx, n, "/message/v1/publish", body, http.Header{"Authorization": {"Bearer " + token}})
	hresp.Body.Close()
	if hresp.StatusCode != http.StatusOK {
		t.Fatalf("gateway publish with token: status %d", hresp.StatusCode)
	}
	hresp = postJSON(t, ctx, n, "/message/v1/publish", body, nil)
	var st struct {
		Code int `json:"code"`
	}
	if hresp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("gateway publish without token: status %d", hresp.StatusCode)
	}
	readJSON(t, hresp, &st)
	if st.Code != int(codes.Unauthenticated) {
		t.Fatalf("gateway publish without token: code %d", st.Code)
	}
}
