package client

import (
	"context"
	"sync"

	messagev1 "github.com/xmtp/proto/v3/go/message_api/v1"

	"github.com/xmtpbridge/bridge/xmtp/api"
	"github.com/xmtpbridge/bridge/xmtp/conversation"
	"github.com/xmtpbridge/bridge/xmtp/keys"
)

// inbound is one running Inbound stream.
type inbound struct {
	c   *Client
	ctx context.Context
	sub *api.Subscription
	out chan *conversation.Message

	mu     sync.Mutex
	seen   seenSet
	closed bool
	wg     sync.WaitGroup // back-fills in flight
}

// Inbound subscribes to the invite topic and every conversation topic and
// streams decrypted messages from others, oldest first per topic, until ctx
// ends. Conversations that appear later, from an invitation or from Send,
// join the subscription, and their earlier messages are back-filled. Each
// message is delivered once per stream.
func (c *Client) Inbound(ctx context.Context) (<-chan *conversation.Message, error) {
	startNs := uint64(c.now().UnixNano())
	ctx, cancel := context.WithCancel(ctx)
	in := &inbound{c: c, ctx: ctx, sub: c.api.Subscribe(ctx), out: make(chan *conversation.Message, 64)}
	// The hook goes in first so no conversation that appears from here on
	// is missed.
	c.mu.Lock()
	c.onNew = append(c.onNew, in.added)
	hook := len(c.onNew) - 1
	c.mu.Unlock()
	stop := func() {
		cancel()
		c.mu.Lock()
		c.onNew[hook] = func(*conversation.Conversation) {}
		c.mu.Unlock()
		in.mu.Lock()
		in.closed = true
		in.mu.Unlock()
		in.wg.Wait()
		close(in.out)
	}
	convs, err := c.Conversations(ctx)
	if err != nil {
		stop()
		return nil, err
	}
	in.sub.Add(keys.InviteTopic(c.Address()))
	for _, conv := range convs {
		in.sub.Add(conv.Topic)
	}

	go func() {
		defer stop()
		// Catch what was published while the subscription was being set up.
		if envs, err := c.queryAll(ctx, keys.InviteTopic(c.Address()), startNs); err == nil {
			for _, env := range envs {
				c.addInvitation(env)
			}
		}
		for _, conv := range convs {
			in.backfill(conv, startNs)
		}
		for {
			select {
			case <-ctx.Done():
				return
			case env, ok := <-in.sub.Envelopes():
				if !ok {
					return
				}
				in.handle(env)
			}
		}
	}()
	return in.out, nil
}

// added is the hook for a conversation that appeared after the stream began.
func (in *inbound) added(conv *conversation.Conversation) {
	if in.ctx.Err() != nil {
		return
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.closed {
		return
	}
	in.sub.Add(conv.Topic)
	in.wg.Add(1)
	go func() {
		defer in.wg.Done()
		in.backfill(conv, uint64(conv.Created.UnixNano()))
	}()
}

func (in *inbound) backfill(conv *conversation.Conversation, startNs uint64) {
	envs, err := in.c.queryAll(in.ctx, conv.Topic, startNs)
	if err != nil {
		if in.ctx.Err() == nil {
			in.c.log.Warn("back-fill conversation failed", "identity", in.c.Address(), "topic", conv.Topic, "error", err)
		}
		return
	}
	for _, env := range envs {
		in.open(conv, env)
	}
}

func (in *inbound) handle(env *messagev1.Envelope) {
	if env.ContentTopic == keys.InviteTopic(in.c.Address()) {
		in.c.addInvitation(env) // the hook subscribes and back-fills
		return
	}
	conv := in.c.byTopicGet(env.ContentTopic)
	if conv == nil {
		return
	}
	in.open(conv, env)
}

func (in *inbound) open(conv *conversation.Conversation, env *messagev1.Envelope) {
	m, err := conv.Open(env)
	if err != nil {
		in.c.reject("message", env, err)
		return
	}
	if m.Sender == in.c.Address() {
		return
	}
	in.mu.Lock()
	fresh := in.seen.add(m.ID)
	in.mu.Unlock()
	if !fresh {
		return
	}
	select {
	case in.out <- m:
	case <-in.ctx.Done():
	}
}

// seenCapacity is how many message ids a stream remembers per generation.
const seenCapacity = 1 << 14

// seenSet remembers recent message ids in two generations, so memory stays
// bounded on a long-lived stream while duplicates from back-fills, which
// arrive close together, are still caught.
type seenSet struct {
	cur, prev map[string]struct{}
}

// add records id and reports whether it was not seen before.
func (s *seenSet) add(id string) bool {
	if _, ok := s.cur[id]; ok {
		return false
	}
	if _, ok := s.prev[id]; ok {
		return false
	}
	if s.cur == nil || len(s.cur) >= seenCapacity {
		s.prev, s.cur = s.cur, make(map[string]struct{})
	}
	s.cur[id] = struct{}{}
	return true
}
