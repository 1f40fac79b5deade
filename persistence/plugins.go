package persistence

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// ErrPluginBound means a plug-in is still bound to an extension point and
// cannot be deleted.
var ErrPluginBound = errors.New("plug-in is bound")

// ErrPluginExport means a plug-in does not export the function of an
// extension point it is, or would be, bound to.
var ErrPluginExport = errors.New("plug-in does not export the extension point")

// ErrPluginQuota means the account holds as many plug-ins as it may.
var ErrPluginQuota = errors.New("plug-in quota reached")

// PluginChannel is the Postgres notification channel on which binding
// changes are announced, with the bridge id as payload.
const PluginChannel = "bridge_plugins"

// Plugin is an uploaded plug-in without its bytes.
type Plugin struct {
	ID        string
	AccountID string
	Name      string
	Version   int
	SHA256    string
	Size      int
	Exports   []string
	CreatedAt time.Time
	UpdatedAt time.Time
}

// PluginBinding is a plug-in bound to an extension point of a bridge.
type PluginBinding struct {
	BridgeID      string
	BridgeAddress string
	Point         string
	PluginID      string
	PluginName    string
	SHA256        string
	Config        map[string]string
	OnError       string
	UpdatedAt     time.Time
}

// PluginCode is one version of a plug-in's bytes.
type PluginCode struct {
	SHA256 string
	Wasm   []byte
}

// PluginSHA256 is the ETag of wasm.
func PluginSHA256(wasm []byte) string {
	sum := sha256.Sum256(wasm)
	return hex.EncodeToString(sum[:])
}

const pluginColumns = "id, account_id, name, version, sha256, size, exports, created_at, updated_at"

func scanPlugin(row pgx.Row) (Plugin, error) {
	var p Plugin
	err := row.Scan(&p.ID, &p.AccountID, &p.Name, &p.Version, &p.SHA256, &p.Size, &p.Exports, &p.CreatedAt, &p.UpdatedAt)
	return p, err
}

// SavePlugin stores wasm as the plug-in name of an account: a new plug-in,
// or a new version of the one of that name, which every node running it
// then picks up. A new version must still export every extension point
// the plug-in is bound to. maxPerAccount bounds the account's plug-ins
// (0: no bound). It reports whether the plug-in is new.
func (s *Store) SavePlugin(ctx context.Context, accountID, name string, wasm []byte, exports []string, maxPerAccount int) (Plugin, bool, error) {
	if !validID(accountID) {
		return Plugin{}, false, fmt.Errorf("save plugin: %w", ErrNotFound)
	}
	sum := PluginSHA256(wasm)
	var out Plugin
	created := false
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		// One upload per account at a time, so the quota holds.
		if _, err := tx.Exec(ctx, `SELECT 1 FROM accounts WHERE id = $1 FOR UPDATE`, accountID); err != nil {
			return err
		}
		var id string
		err := tx.QueryRow(ctx, `SELECT id FROM plugins WHERE account_id = $1 AND name = $2`, accountID, name).Scan(&id)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			if maxPerAccount > 0 {
				var n int
				if err := tx.QueryRow(ctx, `SELECT count(*) FROM plugins WHERE account_id = $1`, accountID).Scan(&n); err != nil {
					return err
				}
				if n >= maxPerAccount {
					return ErrPluginQuota
				}
			}
			created = true
			out, err = scanPlugin(tx.QueryRow(ctx, `INSERT INTO plugins (id, account_id, name, sha256, size, exports, wasm)
				VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING `+pluginColumns,
				newID(), accountID, name, sum, len(wasm), exports, wasm))
			return err
		case err != nil:
			return err
		}
		rows, err := tx.Query(ctx, `SELECT DISTINCT point FROM plugin_bindings WHERE plugin_id = $1`, id)
		if err != nil {
			return err
		}
		points, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return err
		}
		for _, p := range points {
			if !slices.Contains(exports, p) {
				return fmt.Errorf("%w: %s is bound and the new version lacks it", ErrPluginExport, p)
			}
		}
		out, err = scanPlugin(tx.QueryRow(ctx, `UPDATE plugins SET wasm = $2, sha256 = $3, size = $4, exports = $5,
			version = version + CASE WHEN sha256 = $3 THEN 0 ELSE 1 END, updated_at = now()
			WHERE id = $1 RETURNING `+pluginColumns, id, wasm, sum, len(wasm), exports))
		return err
	})
	if err != nil {
		if errors.Is(err, ErrPluginQuota) || errors.Is(err, ErrPluginExport) {
			return Plugin{}, false, fmt.Errorf("save plugin %s: %w", name, err)
		}
		return Plugin{}, false, fmt.Errorf("save plugin %s: %w", name, mapError(err))
	}
	return out, created, nil
}

// ListPlugins returns an account's plug-ins, oldest first.
func (s *Store) ListPlugins(ctx context.Context, accountID string) ([]Plugin, error) {
	if !validID(accountID) {
		return nil, nil
	}
	rows, err := s.pool.Query(ctx, `SELECT `+pluginColumns+` FROM plugins WHERE account_id = $1 ORDER BY id`, accountID)
	if err != nil {
		return nil, fmt.Errorf("list plugins: %w", mapError(err))
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Plugin, error) { return scanPlugin(r) })
	if err != nil {
		return nil, fmt.Errorf("list plugins: %w", mapError(err))
	}
	return out, nil
}

// DeletePlugin deletes one of an account's plug-ins; a bound one is
// refused with ErrPluginBound.
func (s *Store) DeletePlugin(ctx context.Context, accountID, pluginID string) error {
	if !validID(accountID) || !validID(pluginID) {
		return fmt.Errorf("delete plugin: %w", ErrNotFound)
	}
	tag, err := s.pool.Exec(ctx, `DELETE FROM plugins WHERE id = $1 AND account_id = $2`, pluginID, accountID)
	if err != nil {
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "23503" {
			return fmt.Errorf("delete plugin: %w", ErrPluginBound)
		}
		return fmt.Errorf("delete plugin: %w", mapError(err))
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("delete plugin: %w", ErrNotFound)
	}
	return nil
}

// BindPlugin binds one of an account's plug-ins to an extension point of
// one of its bridges, replacing what was bound there.
func (s *Store) BindPlugin(ctx context.Context, accountID, bridgeID, point, pluginID string, config map[string]string, onError string) (PluginBinding, error) {
	if !validID(accountID) || !validID(bridgeID) || !validID(pluginID) {
		return PluginBinding{}, fmt.Errorf("bind plugin: %w", ErrNotFound)
	}
	if config == nil {
		config = map[string]string{}
	}
	raw, err := json.Marshal(config)
	if err != nil {
		return PluginBinding{}, fmt.Errorf("bind plugin: %w", err)
	}
	var exports []string
	err = s.pool.QueryRow(ctx, `SELECT p.exports FROM plugins p JOIN bridges b ON b.account_id = p.account_id
		WHERE p.id = $1 AND b.id = $2 AND p.account_id = $3`, pluginID, bridgeID, accountID).Scan(&exports)
	if err != nil {
		return PluginBinding{}, fmt.Errorf("bind plugin: %w", mapError(err))
	}
	if !slices.Contains(exports, point) {
		return PluginBinding{}, fmt.Errorf("bind plugin: %w: %s", ErrPluginExport, point)
	}
	_, err = s.pool.Exec(ctx, `INSERT INTO plugin_bindings (bridge_id, point, plugin_id, config, on_error)
		VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (bridge_id, point) DO UPDATE SET plugin_id = EXCLUDED.plugin_id, config = EXCLUDED.config,
			on_error = EXCLUDED.on_error, updated_at = now()`, bridgeID, point, pluginID, raw, onError)
	if err != nil {
		return PluginBinding{}, fmt.Errorf("bind plugin: %w", mapError(err))
	}
	bs, err := s.PluginBindings(ctx, bridgeID)
	if err != nil {
		return PluginBinding{}, fmt.Errorf("bind plugin: %w", err)
	}
	for _, b := range bs {
		if b.Point == point {
			return b, nil
		}
	}
	return PluginBinding{}, fmt.Errorf("bind plugin: %w", ErrNotFound)
}

// UnbindPlugin removes what is bound to an extension point of one of an
// account's bridges.
func (s *Store) UnbindPlugin(ctx context.Context, accountID, bridgeID, point string) error {
	if !validID(accountID) || !validID(bridgeID) {
		return fmt.Errorf("unbind plugin: %w", ErrNotFound)
	}
	tag, err := s.pool.Exec(ctx, `DELETE FROM plugin_bindings pb USING bridges b
		WHERE pb.bridge_id = b.id AND b.id = $1 AND b.account_id = $2 AND pb.point = $3`, bridgeID, accountID, point)
	if err != nil {
		return fmt.Errorf("unbind plugin: %w", mapError(err))
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("unbind plugin: %w", ErrNotFound)
	}
	return nil
}

// PluginBindings returns the bindings of a bridge, or of every bridge when
// bridgeID is empty, for the runtime.
func (s *Store) PluginBindings(ctx context.Context, bridgeID string) ([]PluginBinding, error) {
	q := `SELECT pb.bridge_id, b.address, pb.point, pb.plugin_id, p.name, p.sha256, pb.config, pb.on_error, pb.updated_at
		FROM plugin_bindings pb JOIN bridges b ON b.id = pb.bridge_id JOIN plugins p ON p.id = pb.plugin_id`
	var args []any
	if bridgeID != "" {
		if !validID(bridgeID) {
			return nil, nil
		}
		q += ` WHERE pb.bridge_id = $1`
		args = append(args, bridgeID)
	}
	rows, err := s.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("load plugin bindings: %w", mapError(err))
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (PluginBinding, error) {
		var b PluginBinding
		var raw []byte
		if err := r.Scan(&b.BridgeID, &b.BridgeAddress, &b.Point, &b.PluginID, &b.PluginName, &b.SHA256, &raw, &b.OnError, &b.UpdatedAt); err != nil {
			return b, err
		}
		b.BridgeAddress = strings.ToLower(b.BridgeAddress)
		return b, json.Unmarshal(raw, &b.Config)
	})
	if err != nil {
		return nil, fmt.Errorf("load plugin bindings: %w", mapError(err))
	}
	return out, nil
}

// PluginCode returns the current bytes of a plug-in.
func (s *Store) PluginCode(ctx context.Context, pluginID string) (PluginCode, error) {
	if !validID(pluginID) {
		return PluginCode{}, fmt.Errorf("load plugin code: %w", ErrNotFound)
	}
	var c PluginCode
	err := s.pool.QueryRow(ctx, `SELECT sha256, wasm FROM plugins WHERE id = $1`, pluginID).Scan(&c.SHA256, &c.Wasm)
	if err != nil {
		return PluginCode{}, fmt.Errorf("load plugin code: %w", mapError(err))
	}
	return c, nil
}

// PluginETag returns the SHA-256 of a plug-in's current bytes.
func (s *Store) PluginETag(ctx context.Context, pluginID string) (string, error) {
	if !validID(pluginID) {
		return "", fmt.Errorf("load plugin etag: %w", ErrNotFound)
	}
	var sum string
	if err := s.pool.QueryRow(ctx, `SELECT sha256 FROM plugins WHERE id = $1`, pluginID).Scan(&sum); err != nil {
		return "", fmt.Errorf("load plugin etag: %w", mapError(err))
	}
	return sum, nil
}
