package persistence

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// SystemRole names one of the XMTP identities the system itself holds.
type SystemRole string

// The system identities.
const (
	// RoleAPI is the API server's own identity: its messages to a bridge
	// are reverse commands, never forwarded.
	RoleAPI SystemRole = "api"
	// RoleCanary is the identity the canary prober sends from.
	RoleCanary SystemRole = "canary"
)

// ErrUnknownRole means a system role is not one of RoleAPI and RoleCanary.
var ErrUnknownRole = errors.New("unknown system role")

// SystemIdentity is a system identity with its decrypted key bundle.
type SystemIdentity struct {
	Role      SystemRole
	Address   string
	KeyBundle []byte
	CreatedAt time.Time
}

// NewIdentityFunc generates an XMTP identity and returns its address and
// encoded private key bundle.
type NewIdentityFunc func() (address string, bundle []byte, err error)

// The system identities' keys are re-encrypted by Reseal like every other
// sealed column; the list lives in reseal.go, and this table joins it here.
func init() {
	sealedColumns = append(sealedColumns, sealedColumn{
		table: "system_identities", key: "role, address", keyID: "key_id", nonce: "key_nonce", ciphertext: "key_ciphertext",
		where: "role = $4 AND address = $5",
		aad:   func(k []string) []byte { return systemKeyAAD(SystemRole(k[0]), k[1]) },
	})
}

func systemKeyAAD(role SystemRole, address string) []byte {
	return []byte("system-identity\x00" + string(role) + "\x00" + address)
}

// EnsureSystemIdentity returns the identity of role, generating it with
// generate and storing it sealed the first time. Nodes that start together
// agree on one identity: the first insert wins and the others read it.
func (s *Store) EnsureSystemIdentity(ctx context.Context, role SystemRole, generate NewIdentityFunc) (SystemIdentity, error) {
	if role != RoleAPI && role != RoleCanary {
		return SystemIdentity{}, fmt.Errorf("ensure system identity %q: %w", role, ErrUnknownRole)
	}
	id, err := s.SystemIdentity(ctx, role)
	if err == nil || !errors.Is(err, ErrNotFound) {
		return id, err
	}
	address, bundle, err := generate()
	if err != nil {
		return SystemIdentity{}, fmt.Errorf("generate %s identity: %w", role, err)
	}
	sealed, err := s.sealer.Seal(bundle, systemKeyAAD(role, address))
	if err != nil {
		return SystemIdentity{}, fmt.Errorf("seal %s identity: %w", role, err)
	}
	if _, err := s.pool.Exec(ctx, `INSERT INTO system_identities (role, address, key_id, key_nonce, key_ciphertext)
		VALUES ($1, $2, $3, $4, $5) ON CONFLICT (role) DO NOTHING`,
		string(role), address, sealed.KeyID, sealed.Nonce, sealed.Ciphertext); err != nil {
		return SystemIdentity{}, fmt.Errorf("store %s identity: %w", role, mapError(err))
	}
	return s.SystemIdentity(ctx, role)
}

// SystemIdentity returns the stored identity of role, or ErrNotFound.
func (s *Store) SystemIdentity(ctx context.Context, role SystemRole) (SystemIdentity, error) {
	id := SystemIdentity{Role: role}
	var sealed Sealed
	err := s.pool.QueryRow(ctx, `SELECT address, key_id, key_nonce, key_ciphertext, created_at
		FROM system_identities WHERE role = $1`, string(role)).
		Scan(&id.Address, &sealed.KeyID, &sealed.Nonce, &sealed.Ciphertext, &id.CreatedAt)
	if err != nil {
		return SystemIdentity{}, fmt.Errorf("load %s identity: %w", role, mapError(err))
	}
	if id.KeyBundle, err = s.sealer.Open(sealed, systemKeyAAD(role, id.Address)); err != nil {
		return SystemIdentity{}, fmt.Errorf("load %s identity: %w", role, err)
	}
	return id, nil
}

// CanaryBridges returns the ids of the bridges the canary should probe:
// every bridge that is online (active or endpoint_gone), oldest first.
func (s *Store) CanaryBridges(ctx context.Context) ([]CanaryTarget, error) {
	rows, err := s.pool.Query(ctx, `SELECT id, address FROM bridges WHERE status IN ('active', 'endpoint_gone') ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("list canary bridges: %w", mapError(err))
	}
	defer rows.Close()
	var out []CanaryTarget
	for rows.Next() {
		var t CanaryTarget
		if err := rows.Scan(&t.BridgeID, &t.Address); err != nil {
			return nil, fmt.Errorf("list canary bridges: %w", err)
		}
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list canary bridges: %w", err)
	}
	return out, nil
}

// CanaryTarget is a bridge the canary probes.
type CanaryTarget struct {
	BridgeID string
	Address  string
}
