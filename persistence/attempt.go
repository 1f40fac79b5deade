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
