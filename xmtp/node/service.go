package node

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"math"
	"time"

	messagev1 "github.com/xmtp/proto/v3/go/message_api/v1"
	"github.com/xmtpbridge/bridge/xmtp/keys"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// ErrTooManyTopics reports a request naming more topics (or envelopes, or
// queries) than the node accepts at once.
var ErrTooManyTopics = errors.New("too many topics in one request")

// service implements the message API v1 gRPC service on top of the store
// and the fan-out.
type service struct {
	messagev1.UnimplementedMessageApiServer
	n *Node
}

var _ messagev1.MessageApiServer = (*service)(nil)

// reject counts a rejected request and returns its gRPC status.
func (s *service) reject(reason string, code codes.Code, msg string) error {
	s.n.metrics.rejected.WithLabelValues(reason).Inc()
	return status.Error(code, msg)
}

// Publish validates and stores envelopes, then hands the new ones to live
// subscribers once the transaction has committed.
func (s *service) Publish(ctx context.Context, req *messagev1.PublishRequest) (*messagev1.PublishResponse, error) {
	cfg := s.n.cfg
	if len(req.Envelopes) > cfg.MaxTopicsPerRequest {
		return nil, s.reject(reasonTooManyTopics, codes.InvalidArgument, "too many envelopes in one publish")
	}
	for _, env := range req.Envelopes {
		if env == nil {
			return nil, s.reject(reasonBadTopic, codes.InvalidArgument, "empty envelope")
		}
		if _, err := ParseTopic(env.ContentTopic); err != nil {
			return nil, s.reject(reasonBadTopic, codes.InvalidArgument, "content topic must look like /xmtp/0/<name>/proto")
		}
		if len(env.Message) == 0 {
			return nil, s.reject(reasonEmptyEnvelope, codes.InvalidArgument, "envelope message is empty")
		}
		if len(env.Message) > cfg.MaxEnvelopeBytes {
			return nil, s.reject(reasonTooLarge, codes.InvalidArgument, "envelope message too large")
		}
		if env.TimestampNs > math.MaxInt64 {
			return nil, s.reject(reasonBadTimestamp, codes.InvalidArgument, "envelope timestamp out of range")
		}
	}
	if cfg.Authn {
		if err := s.authorize(ctx, req.Envelopes); err != nil {
			return nil, err
		}
	}
	fresh, err := s.n.store.insert(ctx, req.Envelopes)
	if err != nil {
		s.n.log.Error("store envelopes", "err", err, "count", len(req.Envelopes))
		return nil, status.Error(codes.Unavailable, "store envelopes")
	}
	s.n.metrics.published.Add(float64(len(fresh)))
	s.n.fanout.publish(fresh)
	return &messagev1.PublishResponse{}, nil
}

// authorize checks the bearer token of a publish and that its wallet owns
// every contact and private-store topic it writes to.
func (s *service) authorize(ctx context.Context, envs []*messagev1.Envelope) error {
	token, ok := bearerToken(ctx)
	if !ok {
		return s.reject(reasonUnauthenticated, codes.Unauthenticated, "authorization token required")
	}
	wallet, err := keys.VerifyAuthToken(token, time.Now())
	if err != nil {
		s.n.log.Info("reject auth token", "err", err)
		return s.reject(reasonUnauthenticated, codes.Unauthenticated, "invalid authorization token")
	}
	for _, env := range envs {
		name, _ := ParseTopic(env.ContentTopic)
		owner, restricted := TopicOwner(name)
		if restricted && (owner == "" || !equalFoldASCII(owner, wallet)) {
			return s.reject(reasonForbidden, codes.PermissionDenied, "topic belongs to another wallet")
		}
	}
	return nil
}

// bearerToken returns the token of an "authorization: Bearer <token>"
// metadata entry.
func bearerToken(ctx context.Context) (string, bool) {
	md, _ := metadata.FromIncomingContext(ctx)
	for _, v := range md.Get("authorization") {
		if len(v) > 7 && equalFoldASCII(v[:7], "bearer ") {
			return v[7:], true
		}
	}
	return "", false
}

func equalFoldASCII(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// Query answers one query.
func (s *service) Query(ctx context.Context, req *messagev1.QueryRequest) (*messagev1.QueryResponse, error) {
	q, reason, err := validateQuery(req, s.n.cfg.MaxTopicsPerRequest)
	if err != nil {
		return nil, s.reject(reason, codes.InvalidArgument, err.Error())
	}
	start := time.Now()
	resp, err := s.n.store.query(ctx, q)
	s.n.metrics.queryTime.Observe(time.Since(start).Seconds())
	if err != nil {
		if ctx.Err() != nil {
			return nil, status.FromContextError(ctx.Err()).Err()
		}
		s.n.log.Error("query envelopes", "err", err)
		return nil, status.Error(codes.Unavailable, "query envelopes")
	}
	return resp, nil
}

// BatchQuery answers several queries in order.
func (s *service) BatchQuery(ctx context.Context, req *messagev1.BatchQueryRequest) (*messagev1.BatchQueryResponse, error) {
	total := 0
	for _, r := range req.Requests {
		total += len(r.GetContentTopics())
	}
	if total > s.n.cfg.MaxTopicsPerRequest || len(req.Requests) > s.n.cfg.MaxTopicsPerRequest {
		return nil, s.reject(reasonTooManyTopics, codes.InvalidArgument, ErrTooManyTopics.Error())
	}
	out := &messagev1.BatchQueryResponse{Responses: make([]*messagev1.QueryResponse, 0, len(req.Requests))}
	for _, r := range req.Requests {
		resp, err := s.Query(ctx, r)
		if err != nil {
			return nil, err
		}
		out.Responses = append(out.Responses, resp)
	}
	return out, nil
}

// checkTopics validates the topics of a subscription request.
func (s *service) checkTopics(topics []string) error {
	if len(topics) > s.n.cfg.MaxTopicsPerRequest {
		return s.reject(reasonTooManyTopics, codes.InvalidArgument, ErrTooManyTopics.Error())
	}
	for _, t := range topics {
		if _, err := ParseTopic(t); err != nil {
			return s.reject(reasonBadTopic, codes.InvalidArgument, "content topic must look like /xmtp/0/<name>/proto")
		}
	}
	return nil
}

// Subscribe streams new envelopes of a fixed topic set.
func (s *service) Subscribe(req *messagev1.SubscribeRequest, stream messagev1.MessageApi_SubscribeServer) error {
	if err := s.checkTopics(req.ContentTopics); err != nil {
		return err
	}
	sub := s.n.fanout.subscribe(false, s.n.subscriberBuffer)
	s.n.fanout.setTopics(sub, req.ContentTopics)
	return s.serve(stream.Context(), sub, nil, stream.SendHeader, stream.Send)
}

// SubscribeAll streams every new envelope.
func (s *service) SubscribeAll(_ *messagev1.SubscribeAllRequest, stream messagev1.MessageApi_SubscribeAllServer) error {
	sub := s.n.fanout.subscribe(true, s.n.subscriberBuffer)
	return s.serve(stream.Context(), sub, nil, stream.SendHeader, stream.Send)
}

// Subscribe2 streams new envelopes of a topic set that each request on the
// stream replaces. The stream goes on after the client closes its sending
// side.
func (s *service) Subscribe2(stream messagev1.MessageApi_Subscribe2Server) error {
	sub := s.n.fanout.subscribe(false, s.n.subscriberBuffer)
	errc := make(chan error, 1)
	go func() {
		for {
			req, err := stream.Recv()
			if err == io.EOF {
				return
			}
			if err != nil {
				errc <- err
				return
			}
			if err := s.checkTopics(req.ContentTopics); err != nil {
				errc <- err
				return
			}
			s.n.fanout.setTopics(sub, req.ContentTopics)
		}
	}()
	return s.serve(stream.Context(), sub, errc, stream.SendHeader, stream.Send)
}

// serve runs one subscription until the client leaves, the node stops, the
// request side fails or the subscriber falls behind. It first sends a
// header so the client knows the subscription is live.
func (s *service) serve(ctx context.Context, sub *subscriber, errc <-chan error, sendHeader func(metadata.MD) error, send func(*messagev1.Envelope) error) error {
	s.n.metrics.subscribers.Inc()
	defer s.n.metrics.subscribers.Dec()
	defer s.n.fanout.unsubscribe(sub)
	if err := sendHeader(metadata.Pairs("subscribed", "true")); err != nil {
		return err
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-s.n.closing:
			return status.Error(codes.Unavailable, "node shutting down")
		case err := <-errc:
			if status.Code(err) == codes.Canceled || errors.Is(err, context.Canceled) {
				return nil
			}
			return err
		case <-sub.cut:
			s.n.log.Warn("cut off slow subscriber", slog.Int("buffer", cap(sub.ch)))
			return status.Error(codes.ResourceExhausted, "subscriber too slow: buffer full")
		case env := <-sub.ch:
			if !sub.wants(env.ContentTopic) {
				continue
			}
			if err := send(env); err != nil {
				return err
			}
		}
	}
}
