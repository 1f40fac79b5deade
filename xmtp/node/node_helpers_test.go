package node

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	messagev1 "github.com/xmtp/proto/v3/go/message_api/v1"
	"github.com/xmtpbridge/bridge/persistence/pgtest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// testDatabase returns a fresh migrated database for one test.
func testDatabase(t testing.TB) string {
	return pgtest.NewDatabase(t, pgtest.Template{Name: "xmtpnode", Migrate: Migrate})
}

// startNode starts a node on port 0 over db and stops it when the test
// ends. tune, when not nil, adjusts the node before it starts.
func startNode(t testing.TB, db string, cfg Config, tune func(*Node)) *Node {
	t.Helper()
	cfg.DatabaseURL = db
	if cfg.GRPCAddr == "" {
		cfg.GRPCAddr = "127.0.0.1:0"
	}
	if cfg.HTTPAddr == "" {
		cfg.HTTPAddr = "127.0.0.1:0"
	}
	if cfg.Registerer == nil {
		cfg.Registerer = prometheus.NewRegistry()
	}
	n, err := New(cfg)
	if err != nil {
		t.Fatalf("new node: %v", err)
	}
	if tune != nil {
		tune(n)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := n.Start(ctx); err != nil {
		t.Fatalf("start node: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := n.Stop(ctx); err != nil {
			t.Errorf("stop node: %v", err)
		}
	})
	return n
}

// dialNode returns a gRPC client of the node's message API.
func dialNode(t testing.TB, addr string, opts ...grpc.DialOption) messagev1.MessageApiClient {
	t.Helper()
	opts = append(opts, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(256<<20)))
	conn, err := grpc.Dial(addr, opts...)
	if err != nil {
		t.Fatalf("dial node: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	return messagev1.NewMessageApiClient(conn)
}

func topic(name string) string { return "/xmtp/0/" + name + "/proto" }

func env(topicName string, ts uint64, msg string) *messagev1.Envelope {
	return &messagev1.Envelope{ContentTopic: topic(topicName), TimestampNs: ts, Message: []byte(msg)}
}

func publish(t testing.TB, ctx context.Context, c messagev1.MessageApiClient, envs ...*messagev1.Envelope) {
	t.Helper()
	if _, err := c.Publish(ctx, &messagev1.PublishRequest{Envelopes: envs}); err != nil {
		t.Fatalf("publish: %v", err)
	}
}

// messages lists the message bodies of envs, for comparisons.
func messages(envs []*messagev1.Envelope) string {
	out := ""
	for i, e := range envs {
		if i > 0 {
			out += ","
		}
		out += string(e.Message)
	}
	return out
}

func seq(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s%d", prefix, i)
	}
	return out
}

// metricValue reads the value of a single counter or gauge.
func metricValue(t testing.TB, c prometheus.Collector) float64 {
	t.Helper()
	ch := make(chan prometheus.Metric, 1)
	c.Collect(ch)
	var pb dto.Metric
	if err := (<-ch).Write(&pb); err != nil {
		t.Fatalf("read metric: %v", err)
	}
	return pb.GetCounter().GetValue() + pb.GetGauge().GetValue()
}
