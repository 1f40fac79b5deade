package node

import (
	"io"
	"net/http"
	"strings"
	"testing"

	messagev1 "github.com/xmtp/proto/v3/go/message_api/v1"
	"google.golang.org/protobuf/proto"
)

func FuzzParseTopic(f *testing.F) {
	for _, s := range []string{
		"/xmtp/0/contact-0xAbC/proto", "/xmtp/0/privatestore-0xab/key_bundle/proto",
		"/xmtp/0/m-00ff/proto", "/xmtp/0//proto", "/xmtp/0/proto", "/xmtp/1/a/proto",
		"/xmtp/0/a b/proto", "", "/xmtp/0/a//b/proto", "/xmtp/0/contact-/proto",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, topic string) {
		name, err := ParseTopic(topic)
		if err != nil {
			if name != "" {
				t.Fatalf("error with a name: %q", name)
			}
			return
		}
		if name == "" || topicPrefix+name+topicSuffix != topic || len(topic) > maxTopicBytes {
			t.Fatalf("accepted %q as name %q", topic, name)
		}
		if strings.ContainsAny(name, " \t\n\x00") || strings.Contains(name, "//") {
			t.Fatalf("accepted name %q", name)
		}
		owner, restricted := TopicOwner(name)
		if restricted != (strings.HasPrefix(name, "contact-") || strings.HasPrefix(name, "privatestore-")) {
			t.Fatalf("owner of %q: %q %v", name, owner, restricted)
		}
		if restricted && strings.Contains(owner, "/") && strings.HasPrefix(name, "privatestore-") {
			t.Fatalf("private store owner %q has a slash", owner)
		}
	})
}

func FuzzDecodeQuery(f *testing.F) {
	seeds := []*messagev1.QueryRequest{
		{ContentTopics: []string{"/xmtp/0/a/proto"}},
		{ContentTopics: []string{"/xmtp/0/a/proto", "/xmtp/0/b/proto"}, StartTimeNs: 5, EndTimeNs: 1 << 63,
			PagingInfo: &messagev1.PagingInfo{Limit: 100, Direction: messagev1.SortDirection_SORT_DIRECTION_ASCENDING,
				Cursor: &messagev1.Cursor{Cursor: &messagev1.Cursor_Index{Index: &messagev1.IndexCursor{Digest: make([]byte, 32), SenderTimeNs: 9}}}}},
		{ContentTopics: []string{"bad"}, PagingInfo: &messagev1.PagingInfo{Limit: 1000, Direction: 7}},
		{ContentTopics: []string{"/xmtp/0/a/proto"}, PagingInfo: &messagev1.PagingInfo{Cursor: &messagev1.Cursor{Cursor: &messagev1.Cursor_Index{Index: &messagev1.IndexCursor{Digest: []byte{1}}}}}},
	}
	for _, s := range seeds {
		b, err := proto.Marshal(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var req messagev1.QueryRequest
		if err := proto.Unmarshal(data, &req); err != nil {
			return
		}
		q, reason, err := validateQuery(&req, 10)
		if err != nil {
			if reason == "" {
				t.Fatalf("rejection without a reason: %v", err)
			}
			return
		}
		if q.limit < 1 || q.limit > defaultPageSize || len(q.topics) == 0 || len(q.topics) > 10 || q.start < 0 || q.end < 0 {
			t.Fatalf("accepted query out of bounds: %+v", q)
		}
		if q.cursor != nil && (q.cursor.timestamp < 0 || (len(q.cursor.digest) != 0 && len(q.cursor.digest) != 32)) {
			t.Fatalf("accepted cursor %+v", q.cursor)
		}
	})
}

// FuzzGatewayPublish sends arbitrary JSON bodies through the real HTTP
// gateway into a real node. Whatever the body, the node answers with
// success or a client error, never a server error, and stays up.
func FuzzGatewayPublish(f *testing.F) {
	n := startNode(f, testDatabase(f), Config{MaxEnvelopeBytes: 4096, MaxTopicsPerRequest: 8}, nil)
	url := "http://" + n.HTTPAddr() + "/message/v1/publish"
	for _, s := range []string{
		`{"envelopes":[{"contentTopic":"/xmtp/0/f/proto","timestampNs":"1","message":"eA=="}]}`,
		`{"envelopes":[{"contentTopic":"/xmtp/0/f/proto","timestampNs":"-1"}]}`,
		`{"envelopes":[{"contentTopic":"/xmtp/0/f/proto","timestampNs":"18446744073709551615"}]}`,
		`{"envelopes":[{"contentTopic":"x","message":"!!"}]}`,
		`{"envelopes":null}`, `{}`, `[]`, `{"envelopes":[{}]}`, `not json`,
	} {
		f.Add(s)
	}
	client := &http.Client{}
	f.Fuzz(func(t *testing.T, body string) {
		resp, err := client.Post(url, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatalf("post: %v", err)
		}
		out, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode >= 500 {
			t.Fatalf("body %q: status %d: %s", body, resp.StatusCode, out)
		}
	})
}
