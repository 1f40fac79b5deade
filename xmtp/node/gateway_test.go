package node

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"encoding/json"
	"github.com/xmtpbridge/bridge/internal/testkit"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// postJSON sends body to the gateway and returns the response.
func postJSON(t *testing.T, ctx context.Context, n *Node, path, body string, header http.Header) *http.Response {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+n.HTTPAddr()+path, strings.NewReader(body))
	if err != nil {
		t.Fatalf("new request: %v", err)
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("post %s: %v", path, err)
	}
	return resp
}

func readJSON(t *testing.T, resp *http.Response, into any) {
	t.Helper()
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	if err := json.Unmarshal(body, into); err != nil {
		t.Fatalf("decode %q: %v", body, err)
	}
}

// jsonEnvelope is an envelope as the gateway writes it: int64 as a
// string, bytes as base64.
type jsonEnvelope struct {
	ContentTopic string `json:"contentTopic"`
	TimestampNs  string `json:"timestampNs"`
	Message      string `json:"message"`
}

func TestGatewayPublishQueryJSON(t *testing.T) {
	n := startNode(t, testDatabase(t), Config{}, nil)
	ctx := testkit.Context(t, 30*time.Second)
	msg := base64.StdEncoding.EncodeToString([]byte("hello gateway"))

	resp := postJSON(t, ctx, n, "/message/v1/publish",
		`{"envelopes":[{"contentTopic":"/xmtp/0/g/proto","timestampNs":"1700000000000000001","message":"`+msg+`"},
		{"contentTopic":"/xmtp/0/g/proto","timestampNs":"1700000000000000002","message":"`+msg+`"}]}`, nil)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Access-Control-Allow-Origin") != "*" {
		t.Fatalf("publish: status %d, cors %q", resp.StatusCode, resp.Header.Get("Access-Control-Allow-Origin"))
	}
	var empty map[string]any
	readJSON(t, resp, &empty)
	if len(empty) != 0 {
		t.Fatalf("publish answer: %v", empty)
	}

	// xmtp-js sends the direction by name and the limit as a number.
	resp = postJSON(t, ctx, n, "/message/v1/query",
		`{"contentTopics":["/xmtp/0/g/proto"],"pagingInfo":{"direction":"SORT_DIRECTION_ASCENDING","limit":1}}`, nil)
	var page struct {
		Envelopes  []jsonEnvelope `json:"envelopes"`
		PagingInfo struct {
			Limit     json.Number `json:"limit"`
			Direction string      `json:"direction"`
			Cursor    struct {
				Index struct {
					Digest       string `json:"digest"`
					SenderTimeNs string `json:"senderTimeNs"`
				} `json:"index"`
			} `json:"cursor"`
		} `json:"pagingInfo"`
	}
	readJSON(t, resp, &page)
	if len(page.Envelopes) != 1 {
		t.Fatalf("query: %d envelopes", len(page.Envelopes))
	}
	e := page.Envelopes[0]
	if e.ContentTopic != "/xmtp/0/g/proto" || e.TimestampNs != "1700000000000000001" || e.Message != msg {
		t.Fatalf("query envelope: %+v", e)
	}
	if page.PagingInfo.Direction != "SORT_DIRECTION_ASCENDING" || page.PagingInfo.Cursor.Index.SenderTimeNs != "1700000000000000001" {
		t.Fatalf("query paging info: %+v", page.PagingInfo)
	}
	digest, err := base64.StdEncoding.DecodeString(page.PagingInfo.Cursor.Index.Digest)
	if err != nil || len(digest) != 32 {
		t.Fatalf("cursor digest %q: %v", page.PagingInfo.Cursor.Index.Digest, err)
	}

	// The cursor goes back as xmtp-js sends it: the JSON it received.
	cursorJSON, _ := json.Marshal(page.PagingInfo.Cursor)
	resp = postJSON(t, ctx, n, "/message/v1/query",
		`{"contentTopics":["/xmtp/0/g/proto"],"pagingInfo":{"direction":"SORT_DIRECTION_ASCENDING","limit":1,"cursor":`+string(cursorJSON)+`}}`, nil)
	readJSON(t, resp, &page)
	if len(page.Envelopes) != 1 || page.Envelopes[0].TimestampNs != "1700000000000000002" {
		t.Fatalf("second page: %+v", page.Envelopes)
	}

	// Batch query.
	resp = postJSON(t, ctx, n, "/message/v1/batch-query",
		`{"requests":[{"contentTopics":["/xmtp/0/g/proto"]},{"contentTopics":["/xmtp/0/none/proto"]}]}`, nil)
	var batch struct {
		Responses []struct {
			Envelopes []jsonEnvelope `json:"envelopes"`
		} `json:"responses"`
	}
	readJSON(t, resp, &batch)
	if len(batch.Responses) != 2 || len(batch.Responses[0].Envelopes) != 2 || len(batch.Responses[1].Envelopes) != 0 {
		t.Fatalf("batch query: %+v", batch)
	}
}

func TestGatewayErrorsCORSAndGzip(t *testing.T) {
	n := startNode(t, testDatabase(t), Config{}, nil)
	ctx := testkit.Context(t, 30*time.Second)

	// Errors are grpc-gateway's JSON status, which xmtp-js reads for the
	// code.
	resp := postJSON(t, ctx, n, "/message/v1/publish", `{"envelopes":[{"contentTopic":"bad","timestampNs":"1"}]}`, nil)
	var st struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	}
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("bad topic status: %d", resp.StatusCode)
	}
	readJSON(t, resp, &st)
	if st.Code != 3 || st.Message == "" {
		t.Fatalf("bad topic error: %+v", st)
	}

	// Preflight.
	req, _ := http.NewRequestWithContext(ctx, http.MethodOptions, "http://"+n.HTTPAddr()+"/message/v1/publish", nil)
	req.Header.Set("Origin", "http://example.com")
	req.Header.Set("Access-Control-Request-Method", "POST")
	req.Header.Set("Access-Control-Request-Headers", "authorization,x-client-version")
	pre, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("preflight: %v", err)
	}
	pre.Body.Close()
	if pre.Header.Get("Access-Control-Allow-Origin") != "*" ||
		!strings.Contains(pre.Header.Get("Access-Control-Allow-Headers"), "Authorization") ||
		!strings.Contains(pre.Header.Get("Access-Control-Allow-Methods"), "POST") {
		t.Fatalf("preflight headers: %v", pre.Header)
	}

	// Gzip when asked.
	publish(t, ctx, dialNode(t, n.GRPCAddr()), env("z", 1, strings.Repeat("compressible ", 100)))
	resp = postJSON(t, ctx, n, "/message/v1/query", `{"contentTopics":["/xmtp/0/z/proto"]}`, http.Header{"Accept-Encoding": {"gzip"}})
	defer resp.Body.Close()
	if resp.Header.Get("Content-Encoding") != "gzip" {
		t.Fatalf("query not gzipped: %v", resp.Header)
	}
	zr, err := gzip.NewReader(resp.Body)
	if err != nil {
		t.Fatalf("gzip reader: %v", err)
	}
	body, err := io.ReadAll(zr)
	if err != nil || !bytes.Contains(body, []byte(`"envelopes"`)) {
		t.Fatalf("gunzipped body %q: %v", body, err)
	}
}

// readResult reads one streamed line and returns its result envelope.
func readResult(t *testing.T, r *bufio.Reader) jsonEnvelope {
	t.Helper()
	line, err := r.ReadBytes('\n')
	if err != nil {
		t.Fatalf("read stream line: %v (got %q)", err, line)
	}
	var out struct {
		Result *jsonEnvelope `json:"result"`
	}
	if err := json.Unmarshal(line, &out); err != nil || out.Result == nil {
		t.Fatalf("stream line %q: %v", line, err)
	}
	return *out.Result
}

func TestGatewaySubscribeStream(t *testing.T) {
	n := startNode(t, testDatabase(t), Config{}, nil)
	ctx := testkit.Context(t, 30*time.Second)

	// The response headers arrive before anything is published: that is
	// how a client knows the subscription is live.
	sub := postJSON(t, ctx, n, "/message/v1/subscribe", `{"contentTopics":["/xmtp/0/live/proto"]}`,
		http.Header{"Accept-Encoding": {"gzip"}})
	defer sub.Body.Close()
	if sub.StatusCode != http.StatusOK || sub.Header.Get("Grpc-Metadata-Subscribed") != "true" {
		t.Fatalf("subscribe: status %d headers %v", sub.StatusCode, sub.Header)
	}
	if sub.Header.Get("Content-Encoding") != "" {
		t.Fatalf("stream is compressed: %v", sub.Header)
	}
	all := postJSON(t, ctx, n, "/message/v1/subscribe-all", `{}`, nil)
	defer all.Body.Close()
	if all.StatusCode != http.StatusOK {
		t.Fatalf("subscribe-all: status %d", all.StatusCode)
	}

	msg := base64.StdEncoding.EncodeToString([]byte{0, 1, 2, 255})
	for _, ts := range []string{"5", "6"} {
		resp := postJSON(t, ctx, n, "/message/v1/publish",
			`{"envelopes":[{"contentTopic":"/xmtp/0/live/proto","timestampNs":"`+ts+`","message":"`+msg+`"}]}`, nil)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("publish: status %d", resp.StatusCode)
		}
	}
	r := bufio.NewReader(sub.Body)
	ra := bufio.NewReader(all.Body)
	for _, ts := range []string{"5", "6"} {
		for _, got := range []jsonEnvelope{readResult(t, r), readResult(t, ra)} {
			if got.ContentTopic != "/xmtp/0/live/proto" || got.TimestampNs != ts || got.Message != msg {
				t.Fatalf("streamed envelope: %+v", got)
			}
		}
	}
}
