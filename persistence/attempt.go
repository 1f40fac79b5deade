package persistence

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// AttemptStart is what a webhook attempt of a delivery starts from: the
// delivery as it is now, and the secrets its request is signed with.
type AttemptStart struct {
	Delivery Delivery
	Secrets  []WebhookSecret
}

// StartAttempt reads, in one round trip, what an attempt of a delivery of
// the bridge needs, and checks that l is still the identity's current
// lease: a stale activation must not call the webhook. A lost lease is
// ErrFenced, a missing delivery ErrNotFound; a bridge without a webhook
// secret is ErrNotFound wrapped in "load webhook secrets".
func (s *Store) StartAttempt(ctx context.Context, l Lease, bridgeID string, deliveryID int64) (AttemptStart, error) {
	if !validID(bridgeID) {
		return AttemptStart{}, fmt.Errorf("start attempt: %w", ErrNotFound)
	}
	bridgeID = canonicalID(bridgeID)
	var batch pgx.Batch
	batch.Queue(`SELECT true FROM identity_leases l
		WHERE l.identity = $1 AND l.owner = $2 AND l.epoch = $3 AND `+leaseLive, l.Identity, l.Owner, l.Epoch)
	batch.Queue(`SELECT `+deliveryColumns+` FROM deliveries d WHERE d.id = $1 AND d.bridge_id = $2`, deliveryID, bridgeID)
	batch.Queue(webhookSecretsQuery, bridgeID)
	br := s.pool.SendBatch(ctx, &batch)
	defer br.Close()

	var ok bool
	if err := br.QueryRow().Scan(&ok); errors.Is(err, pgx.ErrNoRows) {
		return AttemptStart{}, fmt.Errorf("start attempt: %w", fencedError(l))
	} else if err != nil {
		return AttemptStart{}, fmt.Errorf("start attempt: check lease: %w", mapError(err))
	}
	d, err := s.scanDelivery(br.QueryRow())
	if err != nil {
		return AttemptStart{}, fmt.Errorf("start attempt: get delivery %d: %w", deliveryID, mapError(err))
	}
	rows, err := br.Query()
	if err != nil {
		return AttemptStart{}, fmt.Errorf("start attempt: load webhook secrets: %w", mapError(err))
	}
	secrets, err := s.scanWebhookSecrets(rows, bridgeID)
	if err != nil {
		return AttemptStart{}, fmt.Errorf("start attempt: %w", err)
	}
	return AttemptStart{Delivery: d, Secrets: secrets}, nil
}

// AttemptKey names an attempt to start: the delivery, its bridge, and the
// lease of the activation that would make it.
type AttemptKey struct {
	Lease      Lease
	BridgeID   string
	DeliveryID int64
}

// AttemptStarted is the outcome of one AttemptKey of StartAttempts.
type AttemptStarted struct {
	AttemptStart
	Err error
}

// StartAttempts is StartAttempt for many attempts, of any identities, in
// one round trip: three reads (the leases, the deliveries, the bridges'
// secrets) that take no locks. It returns one AttemptStarted per key, in
// order, with the errors StartAttempt would give.
func (s *Store) StartAttempts(ctx context.Context, keys []AttemptKey) []AttemptStarted {
	out := make([]AttemptStarted, len(keys))
	if len(keys) == 1 {
		k := keys[0]
		out[0].AttemptStart, out[0].Err = s.StartAttempt(ctx, k.Lease, k.BridgeID, k.DeliveryID)
		return out
	}
	var (
		identities, owners, bridges []string
		epochs, ids                 []int64
		index                       []int
	)
	for i, k := range keys {
		if !validID(k.BridgeID) {
			out[i].Err = fmt.Errorf("start attempt: %w", ErrNotFound)
			continue
		}
		b := canonicalID(k.BridgeID)
		identities, owners, epochs = append(identities, k.Lease.Identity), append(owners, k.Lease.Owner), append(epochs, k.Lease.Epoch)
		bridges, ids, index = append(bridges, b), append(ids, k.DeliveryID), append(index, i)
	}
	if len(index) == 0 {
		return out
	}
	const input = `unnest((SELECT $1::text[]), (SELECT $2::text[]), (SELECT $3::bigint[]), (SELECT $4::text[]::uuid[]), (SELECT $5::bigint[])) WITH ORDINALITY
		AS i(l_identity, l_owner, l_epoch, bridge_id, delivery_id, ord)`
	args := pgArrays(identities, owners, epochs, bridges, ids)
	var batch pgx.Batch
	batch.Queue(`SELECT i.ord FROM `+input+` WHERE EXISTS (SELECT 1 FROM identity_leases l
		WHERE l.identity = i.l_identity AND l.owner = i.l_owner AND l.epoch = i.l_epoch AND `+leaseLive+`)`, args...)
	// Each delivery is read on its own through its primary key (LATERAL,
	// LIMIT 1). A join would let the planner hash the whole table, and a
	// connection keeps the plan it made while the table was small: a
	// sequential scan of every delivery, for every batch.
	batch.Queue(`SELECT i.ord, `+deliveryColumns+` FROM `+input+`
		CROSS JOIN LATERAL (SELECT * FROM deliveries d WHERE d.id = i.delivery_id AND d.bridge_id = i.bridge_id LIMIT 1) d`, args...)
	batch.Queue(bridgesSecretsQuery, pgArrays(distinct(bridges))...)
	fail := func(err error) []AttemptStarted {
		for _, i := range index {
			out[i].Err = err
		}
		return out
	}
	br := s.pool.SendBatch(ctx, &batch)
	defer br.Close()

	live := make([]bool, len(index))
	rows, err := br.Query()
	if err != nil {
		return fail(fmt.Errorf("start attempt: check lease: %w", mapError(err)))
	}
	for rows.Next() {
		var ord int64
		if err := rows.Scan(&ord); err != nil || ord < 1 || int(ord) > len(index) {
			rows.Close()
			return fail(fmt.Errorf("start attempt: check lease: %w", mapError(err)))
		}
		live[ord-1] = true
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fail(fmt.Errorf("start attempt: check lease: %w", mapError(err)))
	}

	found := make([]bool, len(index))
	rows, err = br.Query()
	if err != nil {
		return fail(fmt.Errorf("start attempt: get deliveries: %w", mapError(err)))
	}
	for rows.Next() {
		var ord int64
		d, err := s.scanDelivery(prefixed{rows, []any{&ord}})
		if err != nil || ord < 1 || int(ord) > len(index) {
			rows.Close()
			return fail(fmt.Errorf("start attempt: get deliveries: %w", mapError(err)))
		}
		found[ord-1] = true
		out[index[ord-1]].Delivery = d
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fail(fmt.Errorf("start attempt: get deliveries: %w", mapError(err)))
	}

	secrets, err := s.scanBridgesSecrets(br)
	if err != nil {
		return fail(fmt.Errorf("start attempt: %w", err))
	}

	for k, i := range index {
		key := keys[i]
		switch {
		case !live[k]:
			out[i] = AttemptStarted{Err: fmt.Errorf("start attempt: %w", fencedError(key.Lease))}
		case !found[k]:
			out[i] = AttemptStarted{Err: fmt.Errorf("start attempt: get delivery %d: %w", key.DeliveryID, ErrNotFound)}
		case len(secrets[bridges[k]]) == 0:
			out[i] = AttemptStarted{Err: fmt.Errorf("start attempt: load webhook secrets: %w", ErrNotFound)}
		default:
			out[i].Secrets = secrets[bridges[k]]
		}
	}
	return out
}
