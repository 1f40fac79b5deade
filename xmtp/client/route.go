package client

import (
	"sort"

	messagev1 "github.com/xmtp/proto/v3/go/message_api/v1"

	"github.com/xmtpbridge/bridge/xmtp/conversation"
	"github.com/xmtpbridge/bridge/xmtp/keys"
)

// The functions in this file let a node that multiplexes one subscription
// for many identities route envelopes to each identity's Client without the
// Client opening a stream of its own.

// Topics returns the topics this identity listens on: its invite topic and
// every known conversation topic.
func (c *Client) Topics() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]string, 0, len(c.byTopic)+1)
	out = append(out, keys.InviteTopic(c.Address()))
	for t := range c.byTopic {
		out = append(out, t)
	}
	sort.Strings(out[1:])
	return out
}

// AddConversation makes a stored conversation known, for example one
// restored from the database on activation. It reports whether it was new.
func (c *Client) AddConversation(conv *conversation.Conversation) bool {
	return c.remember(conv) != nil
}

// Handle routes one envelope of this identity's topics. An invitation
// yields the new conversation (nil if already known); a conversation
// message yields the decrypted message, or nil if I sent it. Rejected
// envelopes are counted and returned as errors; envelopes of unknown topics
// return nil, nil, nil.
func (c *Client) Handle(env *messagev1.Envelope) (*conversation.Message, *conversation.Conversation, error) {
	if env.GetContentTopic() == keys.InviteTopic(c.Address()) {
		conv, err := conversation.OpenInvitation(c.bundle, env)
		if err != nil {
			c.reject("invitation", env, err)
			return nil, nil, err
		}
		return nil, c.remember(conv), nil
	}
	conv := c.byTopicGet(env.GetContentTopic())
	if conv == nil {
		return nil, nil, nil
	}
	if c.own.Take(env.GetMessage()) {
		return nil, nil, nil // its own message, as published: nothing to open
	}
	m, err := conv.Open(env)
	if err != nil {
		c.reject("message", env, err)
		return nil, nil, err
	}
	if m.Sender == c.Address() {
		return nil, nil, nil
	}
	return m, nil, nil
}
