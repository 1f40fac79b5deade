package actors

import (
	"context"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	protocluster "github.com/asynkron/protoactor-go/cluster"
	messagev1 "github.com/xmtp/proto/v3/go/message_api/v1"

	"github.com/xmtpbridge/bridge/actors/webhook"
	"github.com/xmtpbridge/bridge/cluster"
	"github.com/xmtpbridge/bridge/persistence"
	"github.com/xmtpbridge/bridge/xmtp/api"
	"github.com/xmtpbridge/bridge/xmtp/content"
)

// Store is the part of the Postgres store the runtime uses.
type Store interface {
	BridgeByID(ctx context.Context, bridgeID string) (persistence.Bridge, error)
	EnabledBridgeIDs(ctx context.Context) ([]string, error)
	EnabledBridgeIDsAmong(ctx context.Context, ids []string) ([]string, error)
	SetLeasedBridgeStatus(ctx context.Context, l persistence.Lease, bridgeID string, status persistence.BridgeStatus) error
	KeyBundle(ctx context.Context, bridgeID string) ([]byte, error)
	ActivationState(ctx context.Context, bridgeID string) (persistence.ActivationState, error)
	ActivationStates(ctx context.Context, bridgeIDs []string) []persistence.ActivationStateResult
	SetContactPublished(ctx context.Context, bridgeID string, digest []byte) error
	SetContactsPublished(ctx context.Context, ps []persistence.ContactPublished) []error
	WebhookSecrets(ctx context.Context, bridgeID string) ([]persistence.WebhookSecret, error)

	AcquireLeaseOn(ctx context.Context, nl persistence.NodeLease, identity, owner string) (persistence.Lease, error)
	AcquireLeasesOn(ctx context.Context, nl persistence.NodeLease, reqs []persistence.LeaseRequest) []persistence.LeaseResult
	StartNodeLease(ctx context.Context, node, member string, ttl time.Duration) (persistence.NodeLease, error)
	RenewNodeLease(ctx context.Context, nl persistence.NodeLease, ttl time.Duration) (persistence.NodeLease, error)
	EndNodeLease(ctx context.Context, nl persistence.NodeLease) error
	CheckLeases(ctx context.Context, ls []persistence.Lease) (map[string]persistence.Lease, error)
	ReleaseLease(ctx context.Context, l persistence.Lease) error
	CheckLease(ctx context.Context, l persistence.Lease) error

	Conversations(ctx context.Context, bridgeID string) ([]persistence.Conversation, error)
	SaveConversation(ctx context.Context, c persistence.Conversation) error
	Cursors(ctx context.Context, bridgeID string) (map[string]persistence.Cursor, error)
	SaveCursors(ctx context.Context, moves []persistence.CursorMove) []error

	RecordDelivery(ctx context.Context, nd persistence.NewDelivery) (persistence.Delivery, bool, error)
	RecordDeliveries(ctx context.Context, nds []persistence.NewDelivery) []persistence.Recorded
	RecordLeasedAttempt(ctx context.Context, l persistence.Lease, deliveryID int64, a persistence.DeliveryAttempt, status persistence.DeliveryStatus, nextAttemptAt time.Time) error
	CompleteDelivery(ctx context.Context, l persistence.Lease, deliveryID int64, a persistence.DeliveryAttempt, reply *persistence.Reply) (int64, bool, error)
	CompleteDeliveries(ctx context.Context, cs []persistence.Completion) []persistence.Completed
	DeliveryByID(ctx context.Context, deliveryID int64) (persistence.Delivery, error)
	StartAttempt(ctx context.Context, l persistence.Lease, bridgeID string, deliveryID int64) (persistence.AttemptStart, error)
	StartAttempts(ctx context.Context, keys []persistence.AttemptKey) []persistence.AttemptStarted
	DueDeliveries(ctx context.Context, bridgeID string, limit int) ([]persistence.Delivery, error)
	DueWorkOn(ctx context.Context, nl persistence.NodeLease, limit int) ([]string, error)
	Listen(ctx context.Context, channels []string, ready func(), fn func(channel, payload string)) error

	DueReplies(ctx context.Context, bridgeID string, limit int) ([]persistence.Reply, error)
	UnsentReplyTopics(ctx context.Context, bridgeID string, topics []string) ([]string, error)
	RecordReplyAttempt(ctx context.Context, l persistence.Lease, replyID int64, status persistence.ReplyStatus, lastError string, nextAttemptAt time.Time) error
	RecordReplyAttempts(ctx context.Context, l persistence.Lease, replyIDs []int64, status persistence.ReplyStatus, lastError string, nextAttemptAt time.Time) error

	Quarantine(ctx context.Context, bridgeID, topic string, envelope []byte, reason string) error

	HandOverLive(ctx context.Context, l persistence.Lease, d persistence.Delivery, body []byte, complete bool) error
	SetSubscribed(ctx context.Context, l persistence.Lease, bridgeID, address string, on bool) error
	BroadcastBatch(ctx context.Context, l persistence.Lease, bridgeID string, rate int) ([]persistence.BroadcastCopy, bool, error)
	QueueBroadcastCopy(ctx context.Context, l persistence.Lease, c persistence.BroadcastCopy, r persistence.Reply, messageID string) (int64, bool, error)
	FailBroadcastCopy(ctx context.Context, l persistence.Lease, c persistence.BroadcastCopy, reason string) error
	FinishBroadcasts(ctx context.Context, bridgeID string) error
	RecordSend(ctx context.Context, bridgeID, messageID string, source persistence.SendSource, to string, status persistence.SendStatus, lastError string) error
}

var _ Store = (*persistence.Store)(nil)

// Transport is the XMTP message API the runtime publishes and queries
// through. It is not used to subscribe: the ingress owns the node's only
// subscription.
type Transport interface {
	Publish(ctx context.Context, auth api.Authorizer, envs ...*messagev1.Envelope) error
	QueryAll(ctx context.Context, topic string, start, end uint64, fn func(*messagev1.Envelope) error) error
	Subscribe(ctx context.Context) *api.Subscription
}

var _ Transport = (*api.Client)(nil)

// Deliverer sends one delivery to the bridge's HTTP endpoint: it writes the
// body in the bridge's format, signs it with Standard Webhooks headers,
// enforces the SSRF policy and classifies the answer. webhook.Deliverer
// implements it.
type Deliverer interface {
	Deliver(ctx context.Context, ep webhook.Endpoint, m webhook.Message) webhook.Result
}

var _ Deliverer = (*webhook.Deliverer)(nil)

// Cluster is what the runtime needs of the cluster: joining it with the
// identity kind, finding the grain of an identity on the member that owns
// it, whether the node still takes requests, the stop in two halves around
// the identities' own, the fencing counters, and the membership and drain
// calls it passes on to the API. cluster.Node implements it; the runtime
// is the node's cluster.Host in return.
type Cluster interface {
	Start(ctx context.Context, system *actor.ActorSystem, kind *protocluster.Kind) error
	Grain(bridgeID string) *actor.PID
	Forget(bridgeID string)
	Leaving() bool
	BeginStop() bool
	Stop() error

	NodeLease() persistence.NodeLease
	BridgeChanged(bridgeID string)
	IdentityStopped(bridgeID string)
	EventsLive(live bool)
	CountTakeover()
	CountFencedWrite()

	Members(ctx context.Context) []cluster.Member
	DrainNode(ctx context.Context, nodeID string) (int, error)
	Drain(ctx context.Context) (int, error)
	Draining() bool
	MembershipReady(ctx context.Context) error
	// NodeLeaseReady reports an error while the node lease is not being
	// renewed.
	NodeLeaseReady() error
}

var _ Cluster = (*cluster.Node)(nil)

// Answerer reports whether the bridge at address answers messages itself,
// with an on_message plug-in, so that a bridge without an endpoint still
// takes them. actors/plugin.Host implements it.
type Answerer interface {
	Answers(address string) bool
}

// SendFilter runs a bridge's on_send plug-in on content the reverse proxy
// is about to send: it returns the content to send, or an error that
// refuses it. actors/plugin.Host implements it.
type SendFilter interface {
	FilterSend(ctx context.Context, bridge, to string, body *content.Content) (*content.Content, error)
}

// answers reports whether the bridge at address answers messages with a
// plug-in.
func (rt *Runtime) answers(address string) bool {
	return rt.cfg.Answerer != nil && rt.cfg.Answerer.Answers(address)
}
