package node

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

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

// FuzzGatewayDecode feeds the real gateway handler of a real node bodies
// built from the input: as given, nested depth levels deep, and padded
// past the limit. Whatever the body, the gateway never panics, never
// answers with a server error, reads no more than its limit of the body
// (one byte past it to see that there is more), answers 413 for a body
// over the limit, and allocates no more than a small multiple of the limit
// while rejecting one.
func FuzzGatewayDecode(f *testing.F) {
	n := startNode(f, testDatabase(f), Config{MaxEnvelopeBytes: 2048, MaxEnvelopesPerPublish: 2, MaxTopicsPerRequest: 4}, nil)
	h := n.httpServer.Handler
	paths := []string{pathPublish, "/message/v1/query", "/message/v1/batch-query", pathSubscribe, pathSubscribeAll}
	for _, s := range []struct {
		body         string
		path, depth  uint8
		pad          uint32
		lengthHeader bool
	}{
		{`{"envelopes":[{"contentTopic":"/xmtp/0/f/proto","timestampNs":"1","message":"eA=="}]}`, 0, 0, 0, true},
		{`{"contentTopics":["/xmtp/0/f/proto"],"pagingInfo":{"limit":1,"direction":"SORT_DIRECTION_ASCENDING"}}`, 1, 0, 0, true},
		{`{"requests":[{"contentTopics":["/xmtp/0/f/proto"]}]}`, 2, 0, 0, false},
		{`{"contentTopics":["/xmtp/0/f/proto"]}`, 3, 0, 0, true},
		{`{}`, 4, 0, 0, true},
		{`{"envelopes":[`, 0, 200, 0, false},
		{`[`, 1, 255, 0, true},
		{`{"a":`, 3, 255, 0, true},
		{`{"envelopes":[{"message":"`, 0, 0, 1 << 16, false},
		{`{"contentTopics":["`, 1, 0, 1 << 14, true},
		{`"\u0000\ud800"`, 2, 3, 0, false},
	} {
		f.Add([]byte(s.body), s.path, s.depth, s.pad, s.lengthHeader)
	}
	f.Fuzz(func(t *testing.T, body []byte, pathIdx, depth uint8, pad uint32, lengthHeader bool) {
		path := paths[int(pathIdx)%len(paths)]
		limit := requestBodyLimit(n.cfg)
		if path == pathPublish {
			limit = publishBodyLimit(n.cfg)
		}
		var b strings.Builder
		levels := int(depth) * 40 // up to 10,200 levels, past encoding/json's 10,000
		for i := 0; i < levels; i++ {
			b.WriteString(`{"a":[`)
		}
		b.Write(body)
		for i := 0; i < levels; i++ {
			b.WriteString(`]}`)
		}
		if pad > 0 {
			b.WriteString(strings.Repeat(" ", int(pad%uint32(4*limit))))
		}
		full := b.String()
		counted := &readCounter{r: strings.NewReader(full)}
		// A stream that starts runs until its context ends.
		wait := 10 * time.Second
		if path == pathSubscribe || path == pathSubscribeAll {
			wait = 50 * time.Millisecond
		}
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		req := httptest.NewRequest(http.MethodPost, path, counted).WithContext(ctx)
		if lengthHeader {
			req.ContentLength = int64(len(full))
		} else {
			req.ContentLength = -1
		}
		w := httptest.NewRecorder()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		h.ServeHTTP(w, req)
		runtime.ReadMemStats(&after)
		if w.Code >= 500 {
			t.Fatalf("%s %d bytes: status %d: %s", path, len(full), w.Code, w.Body.Bytes())
		}
		if counted.n > limit+1 {
			t.Fatalf("%s: read %d bytes of the body, limit %d", path, counted.n, limit)
		}
		if int64(len(full)) > limit {
			if w.Code != http.StatusRequestEntityTooLarge {
				t.Fatalf("%s %d bytes over the limit %d: status %d: %s", path, len(full), limit, w.Code, w.Body.Bytes())
			}
			if alloc := after.TotalAlloc - before.TotalAlloc; alloc > uint64(8*limit)+1<<20 {
				t.Fatalf("%s: rejecting %d bytes allocated %d", path, len(full), alloc)
			}
		} else if w.Code == http.StatusRequestEntityTooLarge {
			t.Fatalf("%s: %d bytes within the limit %d answered 413", path, len(full), limit)
		}
		if w.Code != http.StatusOK && !strings.Contains(w.Body.String(), `"code"`) {
			t.Fatalf("%s: status %d without an error body: %q", path, w.Code, w.Body.String())
		}
	})
}

// readCounter counts the bytes read through it.
type readCounter struct {
	r io.Reader
	n int64
}

func (c *readCounter) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}
