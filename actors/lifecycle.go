package actors

// The identity actor's life: activation with its catch-up and its lease
// under the node lease, the stale stop and the clean stop.

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	messagev1 "github.com/xmtp/proto/v3/go/message_api/v1"

	"github.com/xmtpbridge/bridge/persistence"
	"github.com/xmtpbridge/bridge/xmtp/keys"
)

// activate makes the identity live: it takes the lease, loads the keys and
// conversations, registers the topics with the ingress and queries every
// topic from its cursor.
func (id *identity) activate(ctx actor.Context, bridgeID string) error {
	rt := id.rt
	octx, cancel := context.WithTimeout(context.Background(), rt.cfg.ActivationTimeout)
	defer cancel()
	id.seen = newRecent(rt.cfg.seenSize)

	if rt.isStopping() {
		// The node is draining or stopping: the identity belongs on
		// another member now, and the caller tries again once the
		// topology shows this node gone.
		rt.metrics.activations.WithLabelValues("error").Inc()
		return fmt.Errorf("activate %s: node is leaving the cluster: %w", bridgeID, ErrStopped)
	}
	nonce := make([]byte, 6)
	_, _ = rand.Read(nonce)
	// The owner names the node, the process (its member id) and the
	// activation.
	owner := rt.cfg.NodeID + "." + rt.system.ID + "/" + hex.EncodeToString(nonce)
	// The lease goes with those of the activations under way meanwhile,
	// in one statement (activate_batch.go).
	got := rt.leases.do(leaseCall{nl: rt.cluster.NodeLease(), req: persistence.LeaseRequest{Identity: bridgeID, Owner: owner}})
	lease, err := got.Lease, got.Err
	if err != nil {
		result := "error"
		if errors.Is(err, persistence.ErrLeaseHeld) {
			result = "lease_held"
		}
		rt.metrics.activations.WithLabelValues(result).Inc()
		return fmt.Errorf("activate %s: %w", bridgeID, err)
	}
	// The takeover is counted as soon as the lease is taken: an
	// activation that fails after this releases the lease, and the one
	// that succeeds later takes a released lease and sees no takeover.
	if lease.TookOver {
		rt.cluster.CountTakeover()
		rt.log.Warn("took over an expired lease its holder never released", "bridge", bridgeID, "epoch", lease.Epoch)
	}
	fail := func(err error) error {
		rt.metrics.activations.WithLabelValues("error").Inc()
		rctx, rcancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer rcancel()
		_ = rt.cfg.Store.ReleaseLease(rctx, lease)
		return fmt.Errorf("activate %s: %w", bridgeID, err)
	}
	// The key bundle, the conversations, the cursors, the contact last
	// published and the bridge's status, in one round trip with those of
	// the activations under way meanwhile. Placement activates only
	// enabled bridges; one disabled since stops here, and its lease is
	// released.
	read := rt.states.do(bridgeID)
	st, err := read.State, read.Err
	if err == nil && st.Status == persistence.StatusDisabled {
		err = ErrDisabled
	}
	if err != nil {
		return fail(err)
	}
	// The bundle opened under its bridge's id and address, so it is one
	// this system made: it is not checked again.
	bundle, err := keys.UnmarshalSealedPrivateKeyBundle(st.KeyBundle, st.Address)
	if err != nil {
		return fail(fmt.Errorf("decode key bundle: %w", err))
	}
	actx, acancel := context.WithCancel(context.Background())
	// One authorizer (and its cached token) and one logger serve the
	// activation and its conversations.
	convs := newConversations(bridgeID, bundle, rt.cfg.XMTP, rt.cfg.Store)
	convs.recordContact = func(bridgeID string, digest []byte) error {
		return rt.contacts.do(persistence.ContactPublished{BridgeID: bridgeID, Digest: digest})
	}
	a := &activation{
		rt: rt, bridgeID: bridgeID, address: bundle.Address(), bundle: bundle, auth: convs.auth,
		convs: convs, log: identityLogger(rt.log, bridgeID, bundle.Address()),
		ctx: actx, cancel: acancel, self: ctx.Self(),
	}
	a.lease.Store(&lease)
	if err := a.convs.restore(st.Conversations); err != nil {
		acancel()
		return fail(err)
	}
	if err := a.convs.publishContact(octx, st.ContactDigest, rt.cfg.XMTPNetwork, time.Now()); err != nil {
		acancel()
		return fail(err)
	}
	id.a = a

	// The forward, reverse and canary children, and the strategy that
	// supervises them, are made on first use (children.go): a cold
	// identity has none.

	// Topics join the subscription before the catch-up query, so nothing
	// falls between the two; what both see is handled once.
	topics := append([]string{keys.InviteTopic(a.address)}, a.convs.topics()...)
	rt.ingress.add(ctx.Self(), topics[0])
	rt.ingress.addConversations(ctx.Self(), a.convs.all()...)
	if err := id.catchUp(ctx, octx, st.Cursors); err != nil {
		rt.ingress.remove(ctx.Self(), append(topics, a.convs.topics()...)...)
		acancel()
		// A reply the catch-up's deliveries failed to publish is not
		// this node's to report any more (the cancel comes first).
		rt.failing.forget(a)
		id.a = nil
		return fail(err)
	}
	a.started = time.Now()
	rt.register(a)
	// Deliveries and replies an earlier activation left are found by
	// the node's scheduler, which looks soon (due.go).
	rt.due.soon()
	rt.metrics.activations.WithLabelValues("ok").Inc()
	a.log.Info("identity active", "epoch", lease.Epoch, "conversations", len(a.convs.topics()))
	return nil
}

// catchUp reads the invite topic from its cursor (of cursors, the
// identity's as the activation read them) for conversations started while
// the identity was not active, then every conversation topic from its
// cursor.
func (id *identity) catchUp(actx actor.Context, ctx context.Context, cursors map[string]persistence.Cursor) error {
	a := id.a
	id.cursors = cursors
	// What the catch-up cannot open is counted, and only the first few
	// of it quarantined: a topic's history can be long.
	defer id.bound()()
	inviteTopic := keys.InviteTopic(a.address)
	invites, err := id.query(ctx, inviteTopic, 0)
	if err != nil {
		return err
	}
	for _, env := range invites {
		if err := id.handleInvitation(actx, env, false); err != nil {
			return err
		}
	}
	for _, topic := range a.convs.topics() {
		c, ok := cursors[topic]
		if !ok {
			if err := id.replay(actx, ctx, topic, 0); err != nil {
				return err
			}
			continue
		}
		start := uint64(c.LastTimestampNs)
		// Senders' clocks differ, so a message can carry a timestamp a
		// little older than one handled before it. Forwarded messages
		// are idempotent, so their topics are read again from a little
		// earlier; reverse and canary commands are not, so theirs start
		// at the cursor.
		if conv := a.convs.get(topic); conv != nil && !id.commandPeer(conv.Peer) {
			start = max(start, uint64(replaySkew)) - uint64(replaySkew)
		}
		if err := id.replay(actx, ctx, topic, start); err != nil {
			return err
		}
	}
	return nil
}

// replaySkew is how far before its cursor a forwarded topic is read again
// on activation.
const replaySkew = 30 * time.Second

// commandPeer reports whether messages from addr are commands (reverse or
// canary) rather than messages to forward.
func (id *identity) commandPeer(addr string) bool {
	cfg := id.rt.cfg
	return (cfg.APIAddress != "" && strings.EqualFold(addr, cfg.APIAddress)) ||
		(cfg.CanaryAddress != "" && strings.EqualFold(addr, cfg.CanaryAddress))
}

// query reads a topic from start, skipping the envelope at the topic's
// stored cursor, which was handled before.
func (id *identity) query(ctx context.Context, topic string, start uint64) ([]*messagev1.Envelope, error) {
	cur, hasCursor := id.cursors[topic]
	if hasCursor && start == 0 && topic == keys.InviteTopic(id.a.address) {
		start = uint64(cur.LastTimestampNs)
	}
	var envs []*messagev1.Envelope
	err := id.rt.cfg.XMTP.QueryAll(ctx, topic, start, 0, func(env *messagev1.Envelope) error {
		if hasCursor && int64(env.TimestampNs) == cur.LastTimestampNs && bytes.Equal(keys.Sha256(env.Message), cur.LastDigest) {
			return nil
		}
		envs = append(envs, env)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("query %s: %w", topic, err)
	}
	return envs, nil
}

// replay queries a topic from start and handles what it finds.
func (id *identity) replay(actx actor.Context, ctx context.Context, topic string, start uint64) error {
	envs, err := id.query(ctx, topic, start)
	if err != nil {
		return err
	}
	for _, env := range envs {
		id.handleEnvelope(actx, env, false)
	}
	return nil
}

// replayBounded is replay with a bounded number of quarantine rows, for a
// topic just joined by invitation, whose whole history is read.
func (id *identity) replayBounded(actx actor.Context, ctx context.Context, topic string, start uint64) error {
	defer id.bound()()
	return id.replay(actx, ctx, topic, start)
}

// bound starts a quarantine budget of replayQuarantineBudget rows, unless
// one runs already, and returns what ends it.
func (id *identity) bound() func() {
	if id.budgeted {
		return func() {}
	}
	id.budgeted, id.quarantineLeft = true, replayQuarantineBudget
	return func() { id.budgeted = false }
}

// goStale stops an activation that lost its lease.
func (id *identity) goStale(ctx actor.Context) {
	if id.stale || id.a == nil {
		return
	}
	id.stale = true
	id.rt.metrics.stale.Inc()
	id.a.log.Warn("lease lost, stopping stale activation", "epoch", id.a.currentLease().Epoch)
	ctx.Poison(ctx.Self())
}

func (id *identity) stop() {
	if id.strategy != nil {
		id.strategy.Close()
	}
	a := id.a
	if a == nil {
		return
	}
	id.rt.ingress.remove(a.self, append([]string{keys.InviteTopic(a.address)}, a.convs.topics()...)...)
	// The last cursor moves are written under the lease, before it is
	// released.
	// Moves handed over before, still lingering in the node's cursor
	// writer (cursorLinger) or in its batch in flight, are waited for
	// too, through the last of them; all go without lingering.
	written := id.flushCursors()
	if len(written) == 0 && id.lastMove != nil {
		written = append(written, id.lastMove)
	}
	id.lastMove = nil
	if len(written) > 0 {
		id.rt.cursors.hurry()
	}
	wait := time.NewTimer(5 * time.Second)
cursors:
	for _, moved := range written {
		select {
		case <-moved:
		case <-wait.C:
			break cursors
		}
	}
	wait.Stop()
	// Running webhook attempts finish (or time out) before the context
	// they run under ends; their deliveries stay durable either way. The
	// outcomes of their replies are recorded without lingering.
	a.replies.hurry()
	waitGroup(&a.attempts, id.rt.cfg.DrainTimeout)
	a.cancel()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if !id.stale {
		if err := id.rt.cfg.Store.ReleaseLease(ctx, a.currentLease()); err != nil {
			a.log.Warn("release lease", "error", err)
		}
	}
	id.rt.unregister(a)
	a.log.Info("identity stopped")
	id.a = nil
}

func waitGroup(wg interface{ Wait() }, limit time.Duration) {
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(limit):
	}
}
