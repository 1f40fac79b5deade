package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"
	messagev1 "github.com/xmtp/proto/v3/go/message_api/v1"
	"github.com/xmtpbridge/bridge/internal/testkit"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestPublishQueryPaging(t *testing.T) {
	n := startNode(t, testDatabase(t), Config{}, nil)
	c := dialNode(t, n.GRPCAddr())
	ctx := testkit.Context(t, 30*time.Second)

	// Five envelopes on one topic, published out of order, and noise on
	// another topic.
	publish(t, ctx, c, env("a", 30, "a30"), env("a", 10, "a10"), env("a", 50, "a50"))
	publish(t, ctx, c, env("a", 20, "a20"), env("a", 40, "a40"), env("b", 25, "b25"))
	// The same envelope again is stored once.
	publish(t, ctx, c, env("a", 20, "a20"))
	if got := metricValue(t, n.metrics.published); got != 6 {
		t.Fatalf("published counter: got %v want 6", got)
	}

	query := func(req *messagev1.QueryRequest) *messagev1.QueryResponse {
		t.Helper()
		resp, err := c.Query(ctx, req)
		if err != nil {
			t.Fatalf("query: %v", err)
		}
		return resp
	}
	asc := &messagev1.PagingInfo{Direction: messagev1.SortDirection_SORT_DIRECTION_ASCENDING}
	desc := &messagev1.PagingInfo{Direction: messagev1.SortDirection_SORT_DIRECTION_DESCENDING}

	if got := messages(query(&messagev1.QueryRequest{ContentTopics: []string{topic("a")}, PagingInfo: asc}).Envelopes); got != "a10,a20,a30,a40,a50" {
		t.Fatalf("ascending: got %s", got)
	}
	if got := messages(query(&messagev1.QueryRequest{ContentTopics: []string{topic("a")}, PagingInfo: desc}).Envelopes); got != "a50,a40,a30,a20,a10" {
		t.Fatalf("descending: got %s", got)
	}
	// No paging info means descending, as in xmtp-node-go.
	if got := messages(query(&messagev1.QueryRequest{ContentTopics: []string{topic("a")}}).Envelopes); got != "a50,a40,a30,a20,a10" {
		t.Fatalf("default direction: got %s", got)
	}
	// Time range, both ends inclusive.
	if got := messages(query(&messagev1.QueryRequest{ContentTopics: []string{topic("a")}, StartTimeNs: 20, EndTimeNs: 40, PagingInfo: asc}).Envelopes); got != "a20,a30,a40" {
		t.Fatalf("time range: got %s", got)
	}
	// Two topics at once.
	if got := messages(query(&messagev1.QueryRequest{ContentTopics: []string{topic("a"), topic("b")}, StartTimeNs: 20, EndTimeNs: 30, PagingInfo: asc}).Envelopes); got != "a20,b25,a30" {
		t.Fatalf("two topics: got %s", got)
	}

	for _, tc := range []struct {
		dir  messagev1.SortDirection
		want []string
	}{
		{messagev1.SortDirection_SORT_DIRECTION_ASCENDING, []string{"a10,a20", "a30,a40", "a50"}},
		{messagev1.SortDirection_SORT_DIRECTION_DESCENDING, []string{"a50,a40", "a30,a20", "a10"}},
	} {
		var cursor *messagev1.Cursor
		var pages []string
		for {
			resp := query(&messagev1.QueryRequest{
				ContentTopics: []string{topic("a")},
				PagingInfo:    &messagev1.PagingInfo{Limit: 2, Direction: tc.dir, Cursor: cursor},
			})
			pages = append(pages, messages(resp.Envelopes))
			if resp.PagingInfo.GetDirection() != tc.dir {
				t.Fatalf("%v: response direction %v", tc.dir, resp.PagingInfo.GetDirection())
			}
			cursor = resp.PagingInfo.GetCursor()
			if cursor == nil {
				break
			}
			idx := cursor.GetIndex()
			last := resp.Envelopes[len(resp.Envelopes)-1]
			if idx.SenderTimeNs != last.TimestampNs || string(idx.Digest) != string(Digest(last)) {
				t.Fatalf("%v: cursor %v does not name the last envelope", tc.dir, idx)
			}
			if len(pages) > 5 {
				t.Fatalf("%v: paging does not end: %v", tc.dir, pages)
			}
		}
		if strings.Join(pages, "|") != strings.Join(tc.want, "|") {
			t.Fatalf("%v pages: got %v want %v", tc.dir, pages, tc.want)
		}
	}

	// A full last page still carries a cursor; the next page is empty.
	resp := query(&messagev1.QueryRequest{ContentTopics: []string{topic("a")}, PagingInfo: &messagev1.PagingInfo{Limit: 5, Direction: asc.Direction}})
	if resp.PagingInfo.GetCursor() == nil {
		t.Fatal("full page without cursor")
	}
	resp = query(&messagev1.QueryRequest{ContentTopics: []string{topic("a")}, PagingInfo: &messagev1.PagingInfo{Limit: 5, Direction: asc.Direction, Cursor: resp.PagingInfo.Cursor}})
	if len(resp.Envelopes) != 0 || resp.PagingInfo.GetCursor() != nil {
		t.Fatalf("page after the end: %d envelopes, cursor %v", len(resp.Envelopes), resp.PagingInfo.GetCursor())
	}
}

// TestPublishStoresAllOrNothing: the envelopes of one publish are stored
// together or not at all. A trigger makes Postgres refuse the second of
// three; none is stored, and the same publish without it stores all.
func TestPublishStoresAllOrNothing(t *testing.T) {
	db := testDatabase(t)
	n := startNode(t, db, Config{}, nil)
	c := dialNode(t, n.GRPCAddr())
	ctx := testkit.Context(t, 30*time.Second)
	conn, err := pgx.Connect(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, `
		CREATE FUNCTION refuse_boom() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN
			IF NEW.message = 'boom' THEN RAISE EXCEPTION 'refused'; END IF;
			RETURN NEW;
		END $$;
		CREATE TRIGGER refuse_boom BEFORE INSERT ON xmtp_envelopes FOR EACH ROW EXECUTE FUNCTION refuse_boom()`); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Publish(ctx, &messagev1.PublishRequest{Envelopes: []*messagev1.Envelope{
		env("all", 10, "one"), env("all", 20, "boom"), env("all", 30, "three")}}); err == nil {
		t.Fatal("a publish Postgres refused in part succeeded")
	}
	stored := func() string {
		t.Helper()
		resp, err := c.Query(ctx, &messagev1.QueryRequest{ContentTopics: []string{topic("all")},
			PagingInfo: &messagev1.PagingInfo{Direction: messagev1.SortDirection_SORT_DIRECTION_ASCENDING}})
		if err != nil {
			t.Fatalf("query: %v", err)
		}
		return messages(resp.Envelopes)
	}
	if got := stored(); got != "" {
		t.Fatalf("after the refused publish the topic holds %q, want nothing", got)
	}
	publish(t, ctx, c, env("all", 10, "one"), env("all", 20, "two"), env("all", 30, "three"))
	if got := stored(); got != "one,two,three" {
		t.Fatalf("the topic holds %q, want one,two,three", got)
	}
}

func TestBatchQuery(t *testing.T) {
	n := startNode(t, testDatabase(t), Config{}, nil)
	c := dialNode(t, n.GRPCAddr())
	ctx := testkit.Context(t, 30*time.Second)
	publish(t, ctx, c, env("x", 1, "x1"), env("x", 2, "x2"), env("y", 3, "y3"))
	asc := &messagev1.PagingInfo{Direction: messagev1.SortDirection_SORT_DIRECTION_ASCENDING}
	resp, err := c.BatchQuery(ctx, &messagev1.BatchQueryRequest{Requests: []*messagev1.QueryRequest{
		{ContentTopics: []string{topic("x")}, PagingInfo: asc},
		{ContentTopics: []string{topic("y")}, PagingInfo: asc},
		{ContentTopics: []string{topic("z")}, PagingInfo: asc},
	}})
	if err != nil {
		t.Fatalf("batch query: %v", err)
	}
	var got []string
	for _, r := range resp.Responses {
		got = append(got, messages(r.Envelopes))
	}
	if strings.Join(got, "|") != "x1,x2|y3|" {
		t.Fatalf("batch query: got %q", got)
	}
}

// recvN reads n envelopes from a stream.
func recvN(t *testing.T, recv func() (*messagev1.Envelope, error), n int) []*messagev1.Envelope {
	t.Helper()
	var out []*messagev1.Envelope
	for len(out) < n {
		e, err := recv()
		if err != nil {
			t.Fatalf("receive envelope %d: %v", len(out)+1, err)
		}
		out = append(out, e)
	}
	return out
}

func TestSubscribe(t *testing.T) {
	n := startNode(t, testDatabase(t), Config{}, nil)
	c := dialNode(t, n.GRPCAddr())
	ctx := testkit.Context(t, 30*time.Second)

	sub, err := c.Subscribe(ctx, &messagev1.SubscribeRequest{ContentTopics: []string{topic("s1"), topic("s2")}})
	if err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	md, err := sub.Header()
	if err != nil || strings.Join(md.Get("subscribed"), "") != "true" {
		t.Fatalf("subscribe header: %v %v", md, err)
	}
	all, err := c.SubscribeAll(ctx, &messagev1.SubscribeAllRequest{})
	if err != nil {
		t.Fatalf("subscribe all: %v", err)
	}
	if _, err := all.Header(); err != nil {
		t.Fatalf("subscribe all header: %v", err)
	}
	publish(t, ctx, c, env("s1", 1, "one"), env("other", 2, "other"), env("s2", 3, "two"))
	if got := messages(recvN(t, sub.Recv, 2)); got != "one,two" {
		t.Fatalf("subscribe: got %s", got)
	}
	if got := messages(recvN(t, all.Recv, 3)); got != "one,other,two" {
		t.Fatalf("subscribe all: got %s", got)
	}
	// A duplicate publish reaches nobody a second time.
	publish(t, ctx, c, env("s1", 1, "one"), env("s1", 4, "three"))
	if got := messages(recvN(t, sub.Recv, 1)); got != "three" {
		t.Fatalf("after duplicate: got %s", got)
	}
}

func TestSubscribe2ChangesTopics(t *testing.T) {
	n := startNode(t, testDatabase(t), Config{}, nil)
	c := dialNode(t, n.GRPCAddr())
	ctx := testkit.Context(t, 30*time.Second)

	stream, err := c.Subscribe2(ctx)
	if err != nil {
		t.Fatalf("subscribe2: %v", err)
	}
	if _, err := stream.Header(); err != nil {
		t.Fatalf("subscribe2 header: %v", err)
	}
	if err := stream.Send(&messagev1.SubscribeRequest{ContentTopics: []string{topic("t1")}}); err != nil {
		t.Fatalf("send topics: %v", err)
	}
	// The topic set is applied asynchronously; publish probes until one
	// arrives, then check the set switches.
	testkit.WaitFor(t, 20*time.Second, func() bool { return n.fanout.subscriberCount(topic("t1")) == 1 }, "subscription on t1")
	publish(t, ctx, c, env("t1", 1, "t1-a"), env("t2", 2, "t2-a"))
	if got := messages(recvN(t, stream.Recv, 1)); got != "t1-a" {
		t.Fatalf("first set: got %s", got)
	}
	if err := stream.Send(&messagev1.SubscribeRequest{ContentTopics: []string{topic("t2")}}); err != nil {
		t.Fatalf("send topics: %v", err)
	}
	testkit.WaitFor(t, 20*time.Second, func() bool {
		return n.fanout.subscriberCount(topic("t2")) == 1 && n.fanout.subscriberCount(topic("t1")) == 0
	}, "subscription moved to t2")
	// Closing the sending side keeps the stream open.
	if err := stream.CloseSend(); err != nil {
		t.Fatalf("close send: %v", err)
	}
	publish(t, ctx, c, env("t1", 3, "t1-b"), env("t2", 4, "t2-b"))
	if got := messages(recvN(t, stream.Recv, 1)); got != "t2-b" {
		t.Fatalf("second set: got %s", got)
	}
}

func TestLimits(t *testing.T) {
	reg := prometheus.NewRegistry()
	n := startNode(t, testDatabase(t), Config{MaxEnvelopeBytes: 1000, MaxTopicsPerRequest: 3, MaxEnvelopesPerPublish: 3, Registerer: reg}, nil)
	c := dialNode(t, n.GRPCAddr())
	ctx := testkit.Context(t, 30*time.Second)

	big := &messagev1.Envelope{ContentTopic: topic("big"), TimestampNs: 1, Message: make([]byte, 1001)}
	fits := &messagev1.Envelope{ContentTopic: topic("big"), TimestampNs: 1, Message: make([]byte, 1000)}
	many := []string{topic("1"), topic("2"), topic("3"), topic("4")}
	cases := []struct {
		name string
		call func() error
		code codes.Code
	}{
		{"envelope too large", func() error {
			_, err := c.Publish(ctx, &messagev1.PublishRequest{Envelopes: []*messagev1.Envelope{big}})
			return err
		}, codes.InvalidArgument},
		{"envelope at the limit", func() error {
			_, err := c.Publish(ctx, &messagev1.PublishRequest{Envelopes: []*messagev1.Envelope{fits}})
			return err
		}, codes.OK},
		{"malformed topic", func() error {
			_, err := c.Publish(ctx, &messagev1.PublishRequest{Envelopes: []*messagev1.Envelope{{ContentTopic: "/xmtp/1/x/proto"}}})
			return err
		}, codes.InvalidArgument},
		{"too many envelopes", func() error {
			_, err := c.Publish(ctx, &messagev1.PublishRequest{Envelopes: []*messagev1.Envelope{env("a", 1, ""), env("a", 2, ""), env("a", 3, ""), env("a", 4, "")}})
			return err
		}, codes.InvalidArgument},
		{"query too many topics", func() error { _, err := c.Query(ctx, &messagev1.QueryRequest{ContentTopics: many}); return err }, codes.InvalidArgument},
		{"query no topics", func() error { _, err := c.Query(ctx, &messagev1.QueryRequest{}); return err }, codes.InvalidArgument},
		{"query malformed topic", func() error {
			_, err := c.Query(ctx, &messagev1.QueryRequest{ContentTopics: []string{"contact-0xab"}})
			return err
		}, codes.InvalidArgument},
		{"query page too large", func() error {
			_, err := c.Query(ctx, &messagev1.QueryRequest{ContentTopics: many[:1], PagingInfo: &messagev1.PagingInfo{Limit: 101}})
			return err
		}, codes.InvalidArgument},
		{"query bad cursor", func() error {
			_, err := c.Query(ctx, &messagev1.QueryRequest{ContentTopics: many[:1], PagingInfo: &messagev1.PagingInfo{Cursor: &messagev1.Cursor{Cursor: &messagev1.Cursor_Index{Index: &messagev1.IndexCursor{Digest: []byte{1, 2}, SenderTimeNs: 5}}}}})
			return err
		}, codes.InvalidArgument},
		{"batch too many topics", func() error {
			_, err := c.BatchQuery(ctx, &messagev1.BatchQueryRequest{Requests: []*messagev1.QueryRequest{{ContentTopics: many[:2]}, {ContentTopics: many[2:]}}})
			return err
		}, codes.InvalidArgument},
		{"subscribe too many topics", func() error {
			s, err := c.Subscribe(ctx, &messagev1.SubscribeRequest{ContentTopics: many})
			if err != nil {
				return err
			}
			_, err = s.Recv()
			return err
		}, codes.InvalidArgument},
		{"publish empty envelope", func() error {
			_, err := c.Publish(ctx, &messagev1.PublishRequest{Envelopes: []*messagev1.Envelope{{ContentTopic: "/xmtp/0/empty/proto", TimestampNs: 1}}})
			return err
		}, codes.InvalidArgument},
		{"subscribe2 malformed topic", func() error {
			s, err := c.Subscribe2(ctx)
			if err != nil {
				return err
			}
			if err := s.Send(&messagev1.SubscribeRequest{ContentTopics: []string{"nope"}}); err != nil {
				return err
			}
			_, err = s.Recv()
			return err
		}, codes.InvalidArgument},
	}
	for _, tc := range cases {
		if got := status.Code(tc.call()); got != tc.code {
			t.Errorf("%s: got %v want %v", tc.name, got, tc.code)
		}
	}
	if got := metricValue(t, n.metrics.rejected.WithLabelValues(reasonTooLarge)); got != 1 {
		t.Errorf("rejected too large: got %v", got)
	}
	if got := metricValue(t, n.metrics.rejected.WithLabelValues(reasonEmptyEnvelope)); got != 1 {
		t.Errorf("rejected empty envelope: got %v", got)
	}
	if got := metricValue(t, n.metrics.rejected.WithLabelValues(reasonTooManyTopics)); got != 4 {
		t.Errorf("rejected too many topics: got %v", got)
	}
}

func TestSlowSubscriberIsCutOff(t *testing.T) {
	n := startNode(t, testDatabase(t), Config{}, func(n *Node) { n.subscriberBuffer = 16 })
	ctx := testkit.Context(t, 30*time.Second)
	pub := dialNode(t, n.GRPCAddr())
	fast := dialNode(t, n.GRPCAddr())
	// The slow subscriber's own connection has small fixed flow-control
	// windows, so the node's sends block once it stops reading.
	slow := dialNode(t, n.GRPCAddr(), grpc.WithInitialWindowSize(64<<10), grpc.WithInitialConnWindowSize(64<<10))

	req := &messagev1.SubscribeRequest{ContentTopics: []string{topic("busy")}}
	slowStream, err := slow.Subscribe(ctx, req)
	if err != nil {
		t.Fatalf("slow subscribe: %v", err)
	}
	if _, err := slowStream.Header(); err != nil {
		t.Fatalf("slow header: %v", err)
	}
	fastStream, err := fast.Subscribe(ctx, req)
	if err != nil {
		t.Fatalf("fast subscribe: %v", err)
	}
	if _, err := fastStream.Header(); err != nil {
		t.Fatalf("fast header: %v", err)
	}
	const total = 200
	got := make(chan int, 1)
	go func() {
		count := 0
		for count < total {
			if _, err := fastStream.Recv(); err != nil {
				break
			}
			count++
		}
		got <- count
	}()
	payload := strings.Repeat("x", 8<<10)
	for i := 0; i < total; i++ {
		publish(t, ctx, pub, env("busy", uint64(i+1), payload))
	}
	if count := <-got; count != total {
		t.Fatalf("fast subscriber got %d of %d", count, total)
	}
	// The slow subscriber drains what was buffered, then learns it was cut.
	var slowErr error
	received := 0
	for {
		if _, slowErr = slowStream.Recv(); slowErr != nil {
			break
		}
		received++
	}
	if status.Code(slowErr) != codes.ResourceExhausted {
		t.Fatalf("slow subscriber: got %v after %d envelopes, want ResourceExhausted", slowErr, received)
	}
	if received >= total {
		t.Fatalf("slow subscriber received all %d envelopes", received)
	}
	if got := metricValue(t, n.metrics.cutOff); got != 1 {
		t.Fatalf("cut-off counter: got %v", got)
	}
	testkit.WaitFor(t, 20*time.Second, func() bool { return metricValue(t, n.metrics.subscribers) == 1 }, "subscribers gauge back to one")
}

func TestRestartKeepsData(t *testing.T) {
	db := testDatabase(t)
	first := startNode(t, db, Config{}, nil)
	ctx := testkit.Context(t, 30*time.Second)
	publish(t, ctx, dialNode(t, first.GRPCAddr()), env("keep", 1, "kept"))

	// A stream open during Stop ends with Unavailable.
	sub, err := dialNode(t, first.GRPCAddr()).Subscribe(ctx, &messagev1.SubscribeRequest{ContentTopics: []string{topic("keep")}})
	if err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	if _, err := sub.Header(); err != nil {
		t.Fatalf("header: %v", err)
	}
	grpcAddr, httpAddr := first.GRPCAddr(), first.HTTPAddr()
	stopCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := first.Stop(stopCtx); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if _, err := sub.Recv(); status.Code(err) != codes.Unavailable && !errors.Is(err, io.EOF) {
		t.Fatalf("stream after stop: got %v, want Unavailable", err)
	}
	if err := first.Ready(ctx); !errors.Is(err, ErrNotStarted) {
		t.Fatalf("ready after stop: %v", err)
	}

	second := startNode(t, db, Config{GRPCAddr: grpcAddr, HTTPAddr: httpAddr}, nil)
	if err := second.Ready(ctx); err != nil {
		t.Fatalf("ready: %v", err)
	}
	resp, err := dialNode(t, second.GRPCAddr()).Query(ctx, &messagev1.QueryRequest{ContentTopics: []string{topic("keep")}})
	if err != nil {
		t.Fatalf("query after restart: %v", err)
	}
	if got := messages(resp.Envelopes); got != "kept" {
		t.Fatalf("after restart: got %q", got)
	}
}

// TestQueryPagesAreBoundedInBytes: a page of the largest envelopes would
// be 100 MiB, built again for every query, so a page also ends at
// maxPageBytes with a cursor to the rest. Paging through still returns
// every envelope once, in order; a batch's queries share the budget, each
// getting at least one envelope and a cursor; a batch of more queries
// than xmtp-node-go accepts is refused.
func TestQueryPagesAreBoundedInBytes(t *testing.T) {
	n := startNode(t, testDatabase(t), Config{}, nil)
	c := dialNode(t, n.GRPCAddr())
	ctx := testkit.Context(t, 60*time.Second)
	const count = 12
	big := strings.Repeat("b", 1<<20-16)
	for i := 0; i < count; i++ {
		publish(t, ctx, c, env("big", uint64(i+1), fmt.Sprintf("%02d%s", i, big)))
	}
	asc := messagev1.SortDirection_SORT_DIRECTION_ASCENDING
	req := &messagev1.QueryRequest{ContentTopics: []string{topic("big")}, PagingInfo: &messagev1.PagingInfo{Direction: asc}}
	var seen []string
	pages := 0
	for {
		resp, err := c.Query(ctx, req)
		if err != nil {
			t.Fatalf("query page %d: %v", pages+1, err)
		}
		pages++
		size := 0
		for _, e := range resp.Envelopes {
			size += len(e.Message)
			seen = append(seen, string(e.Message[:2]))
		}
		if size > maxPageBytes+(1<<20) {
			t.Fatalf("page %d holds %d bytes of messages (bound %d plus one envelope)", pages, size, maxPageBytes)
		}
		cur := resp.GetPagingInfo().GetCursor()
		if cur == nil || len(resp.Envelopes) == 0 {
			break
		}
		req.PagingInfo.Cursor = cur
	}
	want := make([]string, count)
	for i := range want {
		want[i] = fmt.Sprintf("%02d", i)
	}
	if strings.Join(seen, ",") != strings.Join(want, ",") {
		t.Fatalf("paged through %v, want %v", seen, want)
	}
	if pages < 3 {
		t.Fatalf("%d envelopes of 1 MiB came in %d pages: the byte bound did not cut them", count, pages)
	}

	var batch []*messagev1.QueryRequest
	for i := 0; i < 3; i++ {
		batch = append(batch, &messagev1.QueryRequest{ContentTopics: []string{topic("big")}, PagingInfo: &messagev1.PagingInfo{Direction: asc}})
	}
	resp, err := c.BatchQuery(ctx, &messagev1.BatchQueryRequest{Requests: batch})
	if err != nil {
		t.Fatalf("batch query: %v", err)
	}
	total := 0
	for i, r := range resp.Responses {
		if len(r.Envelopes) == 0 || r.GetPagingInfo().GetCursor() == nil {
			t.Fatalf("batch answer %d: %d envelopes, cursor %v: each query gets at least one and a cursor to the rest", i, len(r.Envelopes), r.GetPagingInfo().GetCursor())
		}
		for _, e := range r.Envelopes {
			total += len(e.Message)
		}
	}
	if total > maxPageBytes+3*(1<<20) {
		t.Fatalf("batch answer holds %d bytes (bound %d plus one envelope per query)", total, maxPageBytes)
	}

	many := make([]*messagev1.QueryRequest, maxBatchQueries+1)
	for i := range many {
		many[i] = &messagev1.QueryRequest{ContentTopics: []string{topic("big")}}
	}
	if _, err := c.BatchQuery(ctx, &messagev1.BatchQueryRequest{Requests: many}); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("batch of %d queries: %v, want InvalidArgument", len(many), err)
	}
}

// TestEphemeralTopicsAreRelayedNotStored: an envelope of an ephemeral
// topic (/xmtp/0/mE-...) reaches the streams subscribed to it when it is
// published, as in xmtp-node-go, and nothing of it is stored: a query
// finds nothing, and the envelopes table has no row of it. The stored
// envelopes of the same publish are stored and streamed as ever.
func TestEphemeralTopicsAreRelayedNotStored(t *testing.T) {
	db := testDatabase(t)
	reg := prometheus.NewRegistry()
	n := startNode(t, db, Config{Registerer: reg}, nil)
	c := dialNode(t, n.GRPCAddr())
	ctx := testkit.Context(t, 30*time.Second)
	sub, err := c.Subscribe(ctx, &messagev1.SubscribeRequest{ContentTopics: []string{topic("s1"), topic("mE-e1"), topic("dmE-e2")}})
	if err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	if _, err := sub.Header(); err != nil {
		t.Fatalf("subscribe header: %v", err)
	}
	// The streams get a publish's envelopes in its order, whichever are
	// stored.
	publish(t, ctx, c, env("mE-e1", 2, "relayed"), env("s1", 1, "stored"), env("dmE-e2", 3, "relayed-v1"))
	if got := messages(recvN(t, sub.Recv, 3)); got != "relayed,stored,relayed-v1" {
		t.Fatalf("subscriber got %s, want relayed,stored,relayed-v1", got)
	}
	res, err := c.Query(ctx, &messagev1.QueryRequest{ContentTopics: []string{topic("mE-e1")}})
	if err != nil || len(res.Envelopes) != 0 {
		t.Fatalf("query of the ephemeral topic: %d envelopes (%v), want none", len(res.GetEnvelopes()), err)
	}
	if res, err := c.Query(ctx, &messagev1.QueryRequest{ContentTopics: []string{topic("s1")}}); err != nil || messages(res.Envelopes) != "stored" {
		t.Fatalf("query of the stored topic: %v (%v)", res, err)
	}
	conn, err := pgx.Connect(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var rows int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM xmtp_envelopes WHERE topic <> $1`, topic("s1")).Scan(&rows); err != nil || rows != 0 {
		t.Fatalf("stored ephemeral envelopes: %d (%v), want 0", rows, err)
	}
	if published, relayed := metricValue(t, n.metrics.published), metricValue(t, n.metrics.relayed); published != 1 || relayed != 2 {
		t.Fatalf("published %v, relayed %v; want 1 and 2", published, relayed)
	}
}

// TestEphemeralFloodCutsNoSubscriberOff: anyone may publish to an
// ephemeral topic, again and again at no storage cost, so a flood of one
// that a stream is subscribed to, while the stream does not read, must
// not cut the stream off as a stored topic's flood would: the ephemeral
// envelopes take at most half of its room and the rest are dropped,
// counted, and the stream still gets the stored envelopes published after
// the flood, then the rest of its room's worth.
func TestEphemeralFloodCutsNoSubscriberOff(t *testing.T) {
	const buffer = 16
	n := startNode(t, testDatabase(t), Config{}, func(n *Node) { n.subscriberBuffer = buffer })
	ctx := testkit.Context(t, 30*time.Second)
	pub := dialNode(t, n.GRPCAddr())
	// Small flow-control windows: the node's sends block at once, and
	// what the flood sends waits in the subscriber's buffer.
	c := dialNode(t, n.GRPCAddr(), grpc.WithInitialWindowSize(64<<10), grpc.WithInitialConnWindowSize(64<<10))
	sub, err := c.Subscribe(ctx, &messagev1.SubscribeRequest{ContentTopics: []string{topic("mE-proof"), topic("real")}})
	if err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	if _, err := sub.Header(); err != nil {
		t.Fatalf("subscribe header: %v", err)
	}
	payload := strings.Repeat("f", 8<<10)
	for i := range 200 {
		publish(t, ctx, pub, env("mE-proof", uint64(i+1), payload))
	}
	for i := range buffer / 2 {
		publish(t, ctx, pub, env("real", uint64(i+1), fmt.Sprintf("real %d", i)))
	}
	if got := metricValue(t, n.metrics.cutOff); got != 0 {
		t.Fatalf("%v subscribers cut off by an ephemeral flood", got)
	}
	if got := metricValue(t, n.metrics.ephemeralDropped); got == 0 {
		t.Fatal("no ephemeral envelope dropped: the flood did not fill the subscriber's room")
	}
	var real []string
	for len(real) < buffer/2 {
		e, err := sub.Recv()
		if err != nil {
			t.Fatalf("the stream ended after the flood (%v), having got %v", err, real)
		}
		if e.ContentTopic == topic("real") {
			real = append(real, string(e.Message))
		}
	}
	if want := strings.Join(seq("real ", buffer/2), ","); strings.Join(real, ",") != want {
		t.Fatalf("stored envelopes after the flood: %v, want %s", real, want)
	}
}
