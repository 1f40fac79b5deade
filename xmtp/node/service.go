package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"time"

	messagev1 "github.com/xmtp/proto/v3/go/message_api/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/tap"
)

// ErrTooManyTopics reports a request naming more topics (or envelopes, or
// queries) than the node accepts at once.
var ErrTooManyTopics = errors.New("too many topics in one request")

// service implements the message API v1 gRPC service on top of the store
// and the fan-out.
type service struct {
	messagev1.UnimplementedMessageApiServer
	n      *Node
	tokens *tokenCache
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
	if len(req.Envelopes) > cfg.MaxEnvelopesPerPublish {
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
	stored, relayed := splitEphemeral(req.Envelopes)
	fresh, err := s.n.store.insert(ctx, stored)
	if err != nil {
		s.n.log.Error("store envelopes", "err", err, "count", len(stored))
		return nil, status.Error(codes.Unavailable, "store envelopes")
	}
	s.n.metrics.published.Add(float64(len(fresh)))
	s.n.metrics.relayed.Add(float64(len(relayed)))
	s.n.fanout.publish(inRequestOrder(req.Envelopes, fresh, relayed))
	return &messagev1.PublishResponse{}, nil
}

// splitEphemeral separates the envelopes of a publish that the node stores
// from those of ephemeral topics (IsEphemeral), which it only relays.
func splitEphemeral(envs []*messagev1.Envelope) (stored, relayed []*messagev1.Envelope) {
	for i, env := range envs {
		if IsEphemeral(env.ContentTopic) {
			if relayed == nil {
				stored = append(make([]*messagev1.Envelope, 0, len(envs)), envs[:i]...)
			}
			relayed = append(relayed, env)
		} else if relayed != nil {
			stored = append(stored, env)
		}
	}
	if relayed == nil {
		return envs, nil
	}
	return stored, relayed
}

// inRequestOrder returns the envelopes of a publish to hand to the
// streams, fresh (those of stored that were stored now, not duplicates,
// in their order) and relayed, in the order the request gave them.
func inRequestOrder(envs, fresh, relayed []*messagev1.Envelope) []*messagev1.Envelope {
	if len(relayed) == 0 {
		return fresh
	}
	out := make([]*messagev1.Envelope, 0, len(fresh)+len(relayed))
	for _, env := range envs {
		switch {
		case IsEphemeral(env.ContentTopic):
			out = append(out, env)
		case len(fresh) > 0 && fresh[0] == env:
			out = append(out, env)
			fresh = fresh[1:]
		}
	}
	return out
}

// publishMethod is the full gRPC name of Publish.
const publishMethod = "/xmtp.message_api.v1.MessageApi/Publish"

type walletKey struct{}

// tap runs when a call's headers arrive, before any of its message is
// read. A publish from any client but the node's own gateway takes a slot
// of the node's publish budget (publishBudget) first, or is refused at
// once. Then, on a node with authn, a publish without a valid token ends
// there. The wallet it verified travels in the call's context to
// authorize. A call forwarded by the gateway carries the wallet the
// gateway verified, and the gateway's own budget already covered its body.
func (s *service) tap(ctx context.Context, info *tap.Info) (context.Context, error) {
	if info.FullMethodName != publishMethod {
		return ctx, nil
	}
	if s.n.trustedGateway(info.Header) {
		if w := info.Header.Get(mdWallet); s.n.cfg.Authn && len(w) == 1 && w[0] != "" {
			return context.WithValue(ctx, walletKey{}, w[0]), nil
		}
		return ctx, nil
	}
	release, ok := s.n.publishes.admit()
	if !ok {
		return ctx, s.reject(reasonBusy, codes.Unavailable,
			fmt.Sprintf("too many publishes in flight on this node (limit %d); retry later", s.n.cfg.MaxPublishesInFlight))
	}
	if !s.n.cfg.Authn {
		// The stream's context ends with the call however it ends:
		// answered, cancelled, or cut off in the middle of its message.
		context.AfterFunc(ctx, release)
		return ctx, nil
	}
	wallet, st := s.authenticate(info.Header.Get("authorization"))
	if st != nil {
		// A call refused here never gets a stream, whose end would
		// release the slot.
		release()
		return ctx, st.Err()
	}
	context.AfterFunc(ctx, release)
	return context.WithValue(ctx, walletKey{}, wallet), nil
}

// authenticate verifies the bearer token among authorization values and
// returns its wallet, or the status that rejects the call, counted.
func (s *service) authenticate(values []string) (string, *status.Status) {
	token, ok := bearerToken(values)
	if !ok {
		s.n.metrics.rejected.WithLabelValues(reasonUnauthenticated).Inc()
		return "", status.New(codes.Unauthenticated, "authorization token required")
	}
	wallet, err := s.tokens.verify(token, time.Now())
	if err != nil {
		s.n.log.Info("reject auth token", "err", err)
		s.n.metrics.rejected.WithLabelValues(reasonUnauthenticated).Inc()
		return "", status.New(codes.Unauthenticated, "invalid authorization token")
	}
	return wallet, nil
}

// authorize checks that the publish's wallet, verified by tap (or here,
// when the call did not pass tap), owns every contact and private-store
// topic it writes to.
func (s *service) authorize(ctx context.Context, envs []*messagev1.Envelope) error {
	wallet, _ := ctx.Value(walletKey{}).(string)
	if wallet == "" {
		md, _ := metadata.FromIncomingContext(ctx)
		w, st := s.authenticate(md.Get("authorization"))
		if st != nil {
			return st.Err()
		}
		wallet = w
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
// value.
func bearerToken(values []string) (string, bool) {
	for _, v := range values {
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
	return s.query(ctx, q, maxPageBytes)
}

// query runs a valid query whose answer may hold about budget bytes.
func (s *service) query(ctx context.Context, q validQuery, budget int) (*messagev1.QueryResponse, error) {
	start := time.Now()
	resp, err := s.n.store.query(ctx, q, budget)
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
	if total > s.n.cfg.MaxTopicsPerRequest || len(req.Requests) > min(s.n.cfg.MaxTopicsPerRequest, maxBatchQueries) {
		return nil, s.reject(reasonTooManyTopics, codes.InvalidArgument, ErrTooManyTopics.Error())
	}
	// The queries validate first, so a bad one costs no reads; then they
	// share one page budget, each still getting at least one envelope.
	qs := make([]validQuery, len(req.Requests))
	for i, r := range req.Requests {
		q, reason, err := validateQuery(r, s.n.cfg.MaxTopicsPerRequest)
		if err != nil {
			return nil, s.reject(reason, codes.InvalidArgument, err.Error())
		}
		qs[i] = q
	}
	// One round trip for all of them: a catch-up asks for many topics
	// at once, most of them empty.
	resps, err := s.n.store.queryBatch(ctx, qs, maxPageBytes, func(d time.Duration) { s.n.metrics.queryTime.Observe(d.Seconds()) })
	if err != nil {
		if ctx.Err() != nil {
			return nil, status.FromContextError(ctx.Err()).Err()
		}
		s.n.log.Error("query envelopes", "err", err)
		return nil, status.Error(codes.Unavailable, "query envelopes")
	}
	return &messagev1.BatchQueryResponse{Responses: resps}, nil
}

// Bounds of what one query answer holds. A page ends at maxPageBytes of
// envelopes (see store.query); a batch's queries share that budget, and
// a batch holds at most maxBatchQueries queries, as in xmtp-node-go, so
// that an answer holds at most about maxPageBytes plus one of the largest
// envelopes per query.
const (
	maxPageBytes    = 4 << 20
	maxBatchQueries = 50
)

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

// acquire takes a subscription slot for client, or returns the
// ResourceExhausted status that refuses the subscription, counted.
func (s *service) acquire(client string) (func(), error) {
	release, reason, msg := s.n.limits.acquire(client)
	if release == nil {
		s.n.metrics.refused.WithLabelValues(reason).Inc()
		s.n.log.Info("refuse subscription", "client", client, "reason", reason)
		return nil, status.Error(codes.ResourceExhausted, msg)
	}
	return release, nil
}

// newSubscriber registers a subscriber with the node's buffer bounds.
func (s *service) newSubscriber(all bool) *subscriber {
	return s.n.fanout.subscribe(all, s.n.subscriberBuffer, s.n.subscriberBytes)
}

// Subscribe streams new envelopes of a fixed topic set.
func (s *service) Subscribe(req *messagev1.SubscribeRequest, stream messagev1.MessageApi_SubscribeServer) error {
	if err := s.checkTopics(req.ContentTopics); err != nil {
		return err
	}
	release, err := s.acquire(s.n.clientOf(stream.Context()))
	if err != nil {
		return err
	}
	defer release()
	sub := s.newSubscriber(false)
	s.n.fanout.setTopics(sub, req.ContentTopics)
	return s.serve(stream.Context(), sub, nil, stream.SendHeader, stream.Send)
}

// SubscribeAll streams every new envelope.
func (s *service) SubscribeAll(_ *messagev1.SubscribeAllRequest, stream messagev1.MessageApi_SubscribeAllServer) error {
	release, err := s.acquire(s.n.clientOf(stream.Context()))
	if err != nil {
		return err
	}
	defer release()
	sub := s.newSubscriber(true)
	return s.serve(stream.Context(), sub, nil, stream.SendHeader, stream.Send)
}

// Subscribe2 streams new envelopes of a topic set that each request on the
// stream replaces. The stream goes on after the client closes its sending
// side.
func (s *service) Subscribe2(stream messagev1.MessageApi_Subscribe2Server) error {
	release, err := s.acquire(s.n.clientOf(stream.Context()))
	if err != nil {
		return err
	}
	defer release()
	sub := s.newSubscriber(false)
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
			s.n.metrics.topicSets.Inc()
			s.n.fanout.setTopics(sub, req.ContentTopics)
		}
	}()
	return s.serve(stream.Context(), sub, errc, stream.SendHeader, stream.Send)
}

// serve runs one subscription until the client leaves, the node stops, the
// request side fails or the subscriber falls behind. It first sends a
// header so the client knows the subscription is live. Envelopes are sent
// by a goroutine of their own, so that a subscriber cut off while a send
// waits on a client that does not read still ends at once: returning ends
// the stream, which ends the waiting send.
func (s *service) serve(ctx context.Context, sub *subscriber, errc <-chan error, sendHeader func(metadata.MD) error, send func(*messagev1.Envelope) error) error {
	s.n.metrics.subscribers.Inc()
	defer s.n.metrics.subscribers.Dec()
	defer s.n.fanout.unsubscribe(sub)
	if err := sendHeader(metadata.Pairs("subscribed", "true")); err != nil {
		return err
	}
	done := make(chan struct{})
	defer close(done)
	sendErr := make(chan error, 1)
	go func() {
		for {
			select {
			case <-done:
				return
			case <-sub.cut:
				return
			case env := <-sub.ch:
				sub.taken(env)
				if !sub.wants(env.ContentTopic) {
					continue
				}
				if err := send(env); err != nil {
					sendErr <- err
					return
				}
			}
		}
	}()
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
	case err := <-sendErr:
		return err
	case <-sub.cut:
		s.n.log.Warn("cut off slow subscriber", "client", s.n.clientOf(ctx), "budget_bytes", sub.budget)
		return status.Error(codes.ResourceExhausted, "subscriber too slow: buffer full")
	}
}
