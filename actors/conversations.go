package actors

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"sync"
	"time"

	messagev1 "github.com/xmtp/proto/v3/go/message_api/v1"
	"google.golang.org/protobuf/proto"

	"github.com/xmtpbridge/bridge/persistence"
	"github.com/xmtpbridge/bridge/xmtp/conversation"
	"github.com/xmtpbridge/bridge/xmtp/keys"
)

// conversations are the V2 conversations of one identity, by topic. The
// identity actor adds them as invitations arrive; the reverse child adds the
// ones it starts. It is safe for concurrent use.
type conversations struct {
	bridgeID string
	bundle   *keys.PrivateKeyBundle
	auth     *keys.Authorizer
	xmtp     Transport
	store    Store
	// recordContact records the contact published; nil is the store's
	// SetContactPublished. The runtime's batches the records of the
	// activations under way together (activate_batch.go).
	recordContact func(bridgeID string, digest []byte) error

	mu      sync.Mutex
	byTopic map[string]*conversation.Conversation
	// byPeer is the newest conversation with each peer in the default
	// context (withPeer).
	byPeer map[string]*conversation.Conversation
	// starting holds, per peer, a channel closed when a start of a
	// conversation with that peer ends: two sends to the same new peer
	// make one conversation, while starts with different peers (the
	// copies of a broadcast) run side by side.
	starting map[string]chan struct{}
}

func newConversations(bridgeID string, bundle *keys.PrivateKeyBundle, xmtp Transport, store Store) *conversations {
	// The maps are made on first use: most identities have few
	// conversations, and many none.
	return &conversations{bridgeID: bridgeID, bundle: bundle, auth: keys.NewAuthorizer(bundle), xmtp: xmtp, store: store}
}

func (cs *conversations) get(topic string) *conversation.Conversation {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	return cs.byTopic[topic]
}

func (cs *conversations) topics() []string {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	out := make([]string, 0, len(cs.byTopic))
	for t := range cs.byTopic {
		out = append(out, t)
	}
	return out
}

// all returns every conversation.
func (cs *conversations) all() []*conversation.Conversation {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	out := make([]*conversation.Conversation, 0, len(cs.byTopic))
	for _, c := range cs.byTopic {
		out = append(out, c)
	}
	return out
}

// put remembers conv and reports whether it was new.
func (cs *conversations) put(conv *conversation.Conversation) bool {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if _, ok := cs.byTopic[conv.Topic]; ok {
		return false
	}
	if cs.byTopic == nil {
		cs.byTopic = map[string]*conversation.Conversation{}
		cs.byPeer = map[string]*conversation.Conversation{}
	}
	cs.byTopic[conv.Topic] = conv
	if best := cs.byPeer[conv.Peer]; conv.ID == "" && (best == nil || conv.Created.After(best.Created)) {
		cs.byPeer[conv.Peer] = conv
	}
	return true
}

// withPeer returns the newest conversation with peer in the default
// context, or nil.
func (cs *conversations) withPeer(peer string) *conversation.Conversation {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	return cs.byPeer[peer]
}

// restore takes the stored conversations.
func (cs *conversations) restore(stored []persistence.Conversation) error {
	for _, s := range stored {
		conv, err := conversation.RestoreBytes(cs.bundle.Address(), s.PeerAddress, time.Unix(0, s.CreatedNs), s.KeyMaterial)
		if err != nil {
			return fmt.Errorf("restore conversation %s: %w", s.Topic, err)
		}
		cs.put(conv)
	}
	return nil
}

// save stores conv so the next activation restores it.
func (cs *conversations) save(ctx context.Context, conv *conversation.Conversation) error {
	material, err := conv.MarshalInvitation()
	if err != nil {
		return fmt.Errorf("encode conversation %s: %w", conv.Topic, err)
	}
	return cs.store.SaveConversation(ctx, persistence.Conversation{
		BridgeID: cs.bridgeID, Topic: conv.Topic, PeerAddress: conv.Peer, ConversationID: conv.ID,
		Metadata: conv.Metadata, CreatedNs: conv.Created.UnixNano(), KeyMaterial: material,
	})
}

// start returns the default conversation with peer, creating it (and
// publishing the invitation to both invite topics) when there is none.
// created reports a new conversation, which the caller must register.
func (cs *conversations) start(ctx context.Context, peer string, now time.Time) (conv *conversation.Conversation, created bool, err error) {
	peer = keys.ChecksumAddress(peer)
	for {
		if c := cs.withPeer(peer); c != nil {
			return c, false, nil
		}
		cs.mu.Lock()
		busy, ok := cs.starting[peer]
		if !ok {
			done := make(chan struct{})
			if cs.starting == nil {
				cs.starting = map[string]chan struct{}{}
			}
			cs.starting[peer] = done
			cs.mu.Unlock()
			defer func() {
				cs.mu.Lock()
				delete(cs.starting, peer)
				cs.mu.Unlock()
				close(done)
			}()
			break
		}
		cs.mu.Unlock()
		select {
		case <-busy: // look again: it made the conversation, or failed
		case <-ctx.Done():
			return nil, false, ctx.Err()
		}
	}
	// A start that ended between the look and the claim made it.
	if c := cs.withPeer(peer); c != nil {
		return c, false, nil
	}
	contact, err := cs.contact(ctx, peer)
	if err != nil {
		return nil, false, err
	}
	conv, envs, err := conversation.Invite(cs.bundle, contact, "", nil, now)
	if err != nil {
		return nil, false, fmt.Errorf("invite %s: %w", peer, err)
	}
	if err := cs.save(ctx, conv); err != nil {
		return nil, false, err
	}
	if err := cs.xmtp.Publish(ctx, cs.auth, envs...); err != nil {
		return nil, false, fmt.Errorf("publish invitation to %s: %w", peer, err)
	}
	return conv, cs.put(conv), nil
}

// contact fetches the verified contact bundle of addr.
func (cs *conversations) contact(ctx context.Context, addr string) (*keys.PeerBundle, error) {
	var envs []*messagev1.Envelope
	err := cs.xmtp.QueryAll(ctx, keys.ContactTopic(addr), 0, 0, func(env *messagev1.Envelope) error {
		envs = append(envs, env)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("query contact %s: %w", addr, err)
	}
	p, err := keys.PickContact(addr, envs)
	if err != nil {
		return nil, fmt.Errorf("find contact %s: %w: %w", addr, ErrPeerNotOnNetwork, err)
	}
	return p, nil
}

// publishContact publishes the identity's contact bundle on network (the
// runtime's XMTPNetwork) unless the store says this very bundle was
// published there (published is the digest it recorded, nil if none), and
// records it. It does not look at the contact
// topic first: a bundle published before the store kept its digest is
// published once more, which does no harm, and an activation saves a
// query.
func (cs *conversations) publishContact(ctx context.Context, published []byte, network string, now time.Time) error {
	digest, err := contactDigest(cs.bundle, network)
	if err != nil {
		return err
	}
	if bytes.Equal(digest, published) {
		return nil
	}
	envs, err := cs.bundle.ContactEnvelopes(now)
	if err != nil {
		return fmt.Errorf("build contact: %w", err)
	}
	// An authorizer of its own: the identity's keeps no token until it
	// publishes a message, so a cold identity holds none.
	if err := cs.xmtp.Publish(ctx, keys.NewAuthorizer(cs.bundle), envs...); err != nil {
		return fmt.Errorf("publish contact: %w", err)
	}
	record := func() error { return cs.store.SetContactPublished(ctx, cs.bridgeID, digest) }
	if cs.recordContact != nil {
		record = func() error { return cs.recordContact(cs.bridgeID, digest) }
	}
	if err := record(); err != nil {
		return fmt.Errorf("publish contact: %w", err)
	}
	return nil
}

// contactDigest is the digest of the public key bundle a contact
// publishes on network: it changes when the bundle does, and differs from
// one network to another, so that a network that was never given the
// bundle gets it.
func contactDigest(b *keys.PrivateKeyBundle, network string) ([]byte, error) {
	raw, err := proto.MarshalOptions{Deterministic: true}.Marshal(b.PublicBundle())
	if err != nil {
		return nil, fmt.Errorf("encode contact: %w", err)
	}
	// The network's name is prefixed by its length, so that no name and
	// bundle run into each other.
	in := binary.AppendUvarint(nil, uint64(len(network)))
	in = append(append(in, network...), raw...)
	return keys.Sha256(in), nil
}
