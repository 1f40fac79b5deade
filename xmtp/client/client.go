// Package client is the small XMTP V2 port the actors use: an identity that
// sends content to an address, lists and reads its conversations, and
// streams its inbound messages, over the message API v1 transport in
// xmtp/api.
package client

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	messagev1 "github.com/xmtp/proto/v3/go/message_api/v1"

	"github.com/xmtpbridge/bridge/xmtp/api"
	"github.com/xmtpbridge/bridge/xmtp/content"
	"github.com/xmtpbridge/bridge/xmtp/conversation"
	"github.com/xmtpbridge/bridge/xmtp/keys"
)

// Messenger is the XMTP port the actors depend on. The V2 Client implements
// it; a V3 transport can implement it later without touching the actors.
type Messenger interface {
	// Address is the identity's EIP-55 wallet address.
	Address() string
	// Send delivers content to an address, in the conversation with the
	// given id (empty for the default one), creating it if needed.
	Send(ctx context.Context, to string, body *content.Content, conversationID string) (*Sent, error)
	// Reply delivers content on an existing conversation topic.
	Reply(ctx context.Context, topic string, body *content.Content) (*Sent, error)
	// Inbound streams decrypted messages from others until ctx ends.
	Inbound(ctx context.Context) (<-chan *conversation.Message, error)
}

var _ Messenger = (*Client)(nil)

// ErrUnknownConversation reports a reply to a topic the client has no
// conversation for.
var ErrUnknownConversation = errors.New("unknown conversation")

// ErrPeerNotOnNetwork reports a send to an address that has no valid contact
// bundle.
var ErrPeerNotOnNetwork = errors.New("peer is not on the XMTP network")

// Sent describes a published message.
type Sent struct {
	ID    string
	Topic string
	Sent  time.Time
}

// Config builds a Client.
type Config struct {
	// Bundle is the identity.
	Bundle *keys.PrivateKeyBundle
	// API is the message API transport.
	API *api.Client
	// Logger receives rejections and stream problems; nil discards.
	Logger *slog.Logger
	// Rejections counts rejected envelopes; nil uses a private counter set.
	Rejections *conversation.Rejections
	// Now is the clock; nil uses time.Now.
	Now func() time.Time
}

// Client is an XMTP V2 client for one identity.
type Client struct {
	bundle *keys.PrivateKeyBundle
	api    *api.Client
	auth   *keys.Authorizer
	log    *slog.Logger
	rej    *conversation.Rejections
	now    func() time.Time

	// own are the envelopes it published, which Handle passes over
	// without opening when the subscription brings them back.
	own conversation.OwnSent

	mu      sync.Mutex
	byTopic map[string]*conversation.Conversation
	loaded  bool
	onNew   []func(*conversation.Conversation)
}

// New returns a client; call Start to publish its contact bundle.
func New(cfg Config) (*Client, error) {
	if cfg.Bundle == nil || cfg.API == nil {
		return nil, errors.New("new client: bundle and API are required")
	}
	c := &Client{
		bundle:  cfg.Bundle,
		api:     cfg.API,
		auth:    keys.NewAuthorizer(cfg.Bundle),
		log:     cfg.Logger,
		rej:     cfg.Rejections,
		now:     cfg.Now,
		byTopic: map[string]*conversation.Conversation{},
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if c.rej == nil {
		c.rej = &conversation.Rejections{}
	}
	if c.now == nil {
		c.now = time.Now
	}
	return c, nil
}

// Address returns the identity's wallet address.
func (c *Client) Address() string { return c.bundle.Address() }

// Rejections returns the counters of rejected envelopes.
func (c *Client) Rejections() *conversation.Rejections { return c.rej }

// Start publishes the contact bundle, in both forms xmtp-js publishes.
func (c *Client) Start(ctx context.Context) error {
	envs, err := c.bundle.ContactEnvelopes(c.now())
	if err != nil {
		return err
	}
	if err := c.api.Publish(ctx, c.auth, envs...); err != nil {
		return fmt.Errorf("publish contact %s: %w", c.Address(), err)
	}
	return nil
}

// Contact fetches and verifies the newest contact bundle of addr.
func (c *Client) Contact(ctx context.Context, addr string) (*keys.PeerBundle, error) {
	addr = keys.ChecksumAddress(addr)
	envs, err := c.queryAll(ctx, keys.ContactTopic(addr), 0)
	if err != nil {
		return nil, fmt.Errorf("query contact %s: %w", addr, err)
	}
	p, err := keys.PickContact(addr, envs)
	if err != nil {
		return nil, fmt.Errorf("find contact %s: %w: %w", addr, ErrPeerNotOnNetwork, err)
	}
	return p, nil
}

func (c *Client) queryAll(ctx context.Context, topic string, startNs uint64) ([]*messagev1.Envelope, error) {
	var out []*messagev1.Envelope
	err := c.api.QueryAll(ctx, topic, startNs, 0, func(env *messagev1.Envelope) error {
		out = append(out, env)
		return nil
	})
	return out, err
}

// Conversations reads the invite topic and returns every conversation that
// opens, oldest first. Invitations that fail to open are counted and
// skipped.
func (c *Client) Conversations(ctx context.Context) ([]*conversation.Conversation, error) {
	envs, err := c.queryAll(ctx, keys.InviteTopic(c.Address()), 0)
	if err != nil {
		return nil, fmt.Errorf("query invitations: %w", err)
	}
	for _, env := range envs {
		c.addInvitation(env)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.loaded = true
	out := make([]*conversation.Conversation, 0, len(c.byTopic))
	for _, conv := range c.byTopic {
		out = append(out, conv)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Created.Before(out[j].Created) })
	return out, nil
}

// addInvitation opens an invitation envelope and records its conversation.
// It returns the conversation if it is new.
func (c *Client) addInvitation(env *messagev1.Envelope) *conversation.Conversation {
	conv, err := conversation.OpenInvitation(c.bundle, env)
	if err != nil {
		c.reject("invitation", env, err)
		return nil
	}
	return c.remember(conv)
}

func (c *Client) remember(conv *conversation.Conversation) *conversation.Conversation {
	c.mu.Lock()
	if _, ok := c.byTopic[conv.Topic]; ok {
		c.mu.Unlock()
		return nil
	}
	c.byTopic[conv.Topic] = conv
	hooks := append([]func(*conversation.Conversation){}, c.onNew...)
	c.mu.Unlock()
	for _, h := range hooks {
		h(conv)
	}
	return conv
}

func (c *Client) reject(kind string, env *messagev1.Envelope, err error) {
	c.rej.Record(err)
	c.log.Warn("rejected envelope", "identity", c.Address(), "kind", kind,
		"topic", env.GetContentTopic(), "reason", conversation.Reason(err), "error", err)
}

// find returns a known conversation with peer and conversation id.
func (c *Client) find(peer, conversationID string) *conversation.Conversation {
	c.mu.Lock()
	defer c.mu.Unlock()
	var best *conversation.Conversation
	for _, conv := range c.byTopic {
		if conv.Peer == peer && conv.ID == conversationID && (best == nil || conv.Created.After(best.Created)) {
			best = conv
		}
	}
	return best
}

// Conversation returns the conversation with peer and conversation id,
// creating and publishing an invitation if none exists.
func (c *Client) Conversation(ctx context.Context, peer, conversationID string) (*conversation.Conversation, error) {
	peer = keys.ChecksumAddress(peer)
	if conv := c.find(peer, conversationID); conv != nil {
		return conv, nil
	}
	c.mu.Lock()
	loaded := c.loaded
	c.mu.Unlock()
	if !loaded {
		if _, err := c.Conversations(ctx); err != nil {
			return nil, err
		}
		if conv := c.find(peer, conversationID); conv != nil {
			return conv, nil
		}
	}
	contact, err := c.Contact(ctx, peer)
	if err != nil {
		return nil, err
	}
	conv, envs, err := conversation.Invite(c.bundle, contact, conversationID, nil, c.now())
	if err != nil {
		return nil, err
	}
	if err := c.api.Publish(ctx, c.auth, envs...); err != nil {
		return nil, fmt.Errorf("publish invitation to %s: %w", peer, err)
	}
	if added := c.remember(conv); added == nil {
		// Another goroutine created the same conversation.
		return c.byTopicGet(conv.Topic), nil
	}
	return conv, nil
}

func (c *Client) byTopicGet(topic string) *conversation.Conversation {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.byTopic[topic]
}

// Send delivers content to an address, in the conversation with the given id.
func (c *Client) Send(ctx context.Context, to string, body *content.Content, conversationID string) (*Sent, error) {
	conv, err := c.Conversation(ctx, to, conversationID)
	if err != nil {
		return nil, fmt.Errorf("send to %s: %w", keys.ChecksumAddress(to), err)
	}
	return c.publish(ctx, conv, body)
}

// SendText delivers a text message to an address in its default
// conversation.
func (c *Client) SendText(ctx context.Context, to, text string) (*Sent, error) {
	return c.Send(ctx, to, content.Text(text), "")
}

// Reply delivers content on a known conversation topic.
func (c *Client) Reply(ctx context.Context, topic string, body *content.Content) (*Sent, error) {
	conv := c.byTopicGet(topic)
	if conv == nil {
		if _, err := c.Conversations(ctx); err != nil {
			return nil, err
		}
		if conv = c.byTopicGet(topic); conv == nil {
			return nil, fmt.Errorf("reply on %s: %w", topic, ErrUnknownConversation)
		}
	}
	return c.publish(ctx, conv, body)
}

func (c *Client) publish(ctx context.Context, conv *conversation.Conversation, body *content.Content) (*Sent, error) {
	env, err := conv.Seal(c.bundle, body, c.now())
	if err != nil {
		return nil, err
	}
	// Remembered before it is published: its copy can come back on a
	// subscription before Publish returns.
	c.own.Add(env.Message)
	if err := c.api.Publish(ctx, c.auth, env); err != nil {
		c.own.Take(env.Message)
		return nil, fmt.Errorf("publish message to %s: %w", conv.Topic, err)
	}
	return &Sent{ID: conversation.MessageID(env.Message), Topic: conv.Topic, Sent: time.Unix(0, int64(env.TimestampNs))}, nil
}

// Messages reads every message of a conversation topic, oldest first,
// counting and skipping envelopes that fail to open.
func (c *Client) Messages(ctx context.Context, topic string) ([]*conversation.Message, error) {
	conv := c.byTopicGet(topic)
	if conv == nil {
		return nil, fmt.Errorf("read %s: %w", topic, ErrUnknownConversation)
	}
	envs, err := c.queryAll(ctx, topic, 0)
	if err != nil {
		return nil, fmt.Errorf("query %s: %w", topic, err)
	}
	out := make([]*conversation.Message, 0, len(envs))
	for _, env := range envs {
		m, err := conv.Open(env)
		if err != nil {
			c.reject("message", env, err)
			continue
		}
		out = append(out, m)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Sent.Before(out[j].Sent) })
	return out, nil
}
