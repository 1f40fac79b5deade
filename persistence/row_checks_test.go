package persistence

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
)

// rowCheck is a table whose CHECK constraints migration 0015 replaced with
// one function: the constraints as they were written, the function's
// call, the columns and their types, a valid row, and values to try in
// each column.
type rowCheck struct {
	table, call string
	old         []string
	columns     []string // "name type"
	valid       []any
	tries       map[string][]any
	// pairs are rows that change two columns together (the sealed
	// columns, which the constraints tied to each other).
	pairs []map[string]any
}

// TestRowChecksAreTheConstraintsTheyReplaced: for values on both sides of
// every condition, each table's check function (migration 0015) refuses a
// row exactly when one of the constraints it replaced, evaluated as they
// were written, refuses it; and each table's one constraint calls it, so
// that a row it refuses is not written.
func TestRowChecksAreTheConstraintsTheyReplaced(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _ := newTestStore(t)
	acct, _ := newAccount(t, s, "alice")
	b, _ := newBridge(t, s, acct.ID, []byte("bundle-1"))

	hex40 := strings.Repeat("0123456789abcdefABCD", 2)
	nonce, short := make([]byte, 12), make([]byte, 11)
	keyID, longKeyID := "k1", strings.Repeat("k", 65)
	checks := []rowCheck{{
		table: "deliveries",
		call: `deliveries_row_valid(message_id, topic, sender_address, sent_ns, status, attempts, payload_key_id, payload_nonce,
			reply, reply_key_id, reply_nonce)`,
		old: []string{
			`attempts >= 0`,
			`length(message_id) >= 1 AND length(message_id) <= 256`,
			`payload_key_id IS NULL OR length(payload_key_id) >= 1 AND length(payload_key_id) <= 64`,
			`payload_nonce IS NULL OR length(payload_nonce) = 12`,
			`(payload_key_id IS NULL) = (payload_nonce IS NULL)`,
			`reply_key_id IS NULL OR length(reply_key_id) >= 1 AND length(reply_key_id) <= 64`,
			`reply_nonce IS NULL OR length(reply_nonce) = 12`,
			`(reply IS NULL) = (reply_key_id IS NULL) AND (reply_key_id IS NULL) = (reply_nonce IS NULL)`,
			`sender_address ~ '^0x[0-9a-fA-F]{40}$'`,
			`sent_ns >= 0`,
			`status IN ('pending', 'succeeded', 'failed', 'dead')`,
			`length(topic) >= 1 AND length(topic) <= 512`,
		},
		columns: []string{"message_id text", "topic text", "sender_address text", "sent_ns bigint", "status text", "attempts integer",
			"payload_key_id text", "payload_nonce bytea", "reply bytea", "reply_key_id text", "reply_nonce bytea"},
		valid: []any{"m-1", "/xmtp/0/m-1/proto", "0x" + hex40, int64(0), "pending", int32(0), keyID, nonce, nil, nil, nil},
		tries: map[string][]any{
			"message_id": {"", "m", strings.Repeat("m", 256), strings.Repeat("m", 257)},
			"topic":      {"", "t", strings.Repeat("t", 512), strings.Repeat("t", 513)},
			"sender_address": {"0x" + strings.ToLower(hex40), "0x" + strings.ToUpper(hex40), "0x" + hex40[1:], "0x" + hex40 + "0",
				"0X" + hex40, "1x" + hex40, "0x" + hex40[1:] + "g", "0x" + hex40[1:] + "\n", "0x" + hex40 + "\n", " 0x" + hex40[1:],
				"0x" + hex40[1:] + "é", "0x" + hex40[1:] + "０", "", "0x"},
			"sent_ns":        {int64(-1), int64(1)},
			"status":         {"succeeded", "failed", "dead", "sent", "Pending", ""},
			"attempts":       {int32(-1), int32(7)},
			"payload_key_id": {"", longKeyID[:64], longKeyID},
			"payload_nonce":  {short, []byte{}},
			"reply_key_id":   {keyID},
			"reply":          {[]byte("r")},
			"reply_nonce":    {nonce},
		},
		pairs: []map[string]any{
			{"payload_key_id": nil, "payload_nonce": nil},
			{"payload_key_id": nil, "payload_nonce": short},
			{"reply": []byte("r"), "reply_key_id": keyID},
			{"reply_key_id": keyID, "reply_nonce": nonce},
			{"reply": []byte("r"), "reply_nonce": nonce},
			{"reply": []byte("r"), "reply_key_id": keyID, "reply_nonce": nonce},
			{"reply": []byte{}, "reply_key_id": "", "reply_nonce": nonce},
			{"reply": []byte("r"), "reply_key_id": longKeyID, "reply_nonce": nonce},
			{"reply": []byte("r"), "reply_key_id": keyID, "reply_nonce": short},
		},
	}, {
		table: "reply_outbox",
		call:  `reply_outbox_row_valid(topic, timestamp_ns, status, attempts, envelope_key_id, envelope_nonce)`,
		old: []string{
			`attempts >= 0`,
			`envelope_key_id IS NULL OR length(envelope_key_id) >= 1 AND length(envelope_key_id) <= 64`,
			`envelope_nonce IS NULL OR length(envelope_nonce) = 12`,
			`(envelope_key_id IS NULL) = (envelope_nonce IS NULL)`,
			`status IN ('pending', 'sent', 'failed', 'dead')`,
			`timestamp_ns >= 0`,
			`length(topic) >= 1 AND length(topic) <= 512`,
		},
		columns: []string{"topic text", "timestamp_ns bigint", "status text", "attempts integer", "envelope_key_id text", "envelope_nonce bytea"},
		valid:   []any{"/xmtp/0/m-1/proto", int64(0), "pending", int32(0), keyID, nonce},
		tries: map[string][]any{
			"topic":           {"", strings.Repeat("t", 512), strings.Repeat("t", 513)},
			"timestamp_ns":    {int64(-1), int64(1)},
			"status":          {"sent", "failed", "dead", "succeeded", ""},
			"attempts":        {int32(-1), int32(3)},
			"envelope_key_id": {"", longKeyID[:64], longKeyID},
			"envelope_nonce":  {short},
		},
		pairs: []map[string]any{
			{"envelope_key_id": nil, "envelope_nonce": nil},
			{"envelope_key_id": nil, "envelope_nonce": nonce},
			{"envelope_key_id": keyID, "envelope_nonce": nil},
			{"envelope_key_id": "", "envelope_nonce": nil},
		},
	}, {
		table: "delivery_attempts",
		call:  `delivery_attempts_row_valid(status_code, latency_ms)`,
		old: []string{
			`latency_ms >= 0::double precision`,
			`status_code IS NULL OR status_code >= 100 AND status_code <= 599`,
		},
		columns: []string{"status_code integer", "latency_ms double precision"},
		valid:   []any{int32(200), float64(0)},
		tries: map[string][]any{
			"status_code": {nil, int32(99), int32(100), int32(599), int32(600), int32(-1)},
			"latency_ms":  {float64(-0.001), float64(12.5)},
		},
	}, {
		table: "cursors",
		call:  `cursors_row_valid(topic, last_timestamp_ns, last_digest)`,
		old: []string{
			`last_digest IS NULL OR length(last_digest) = 32`,
			`last_timestamp_ns >= 0`,
			`length(topic) >= 1 AND length(topic) <= 512`,
		},
		columns: []string{"topic text", "last_timestamp_ns bigint", "last_digest bytea"},
		valid:   []any{"/xmtp/0/m-1/proto", int64(0), make([]byte, 32)},
		tries: map[string][]any{
			"topic":             {"", strings.Repeat("t", 512), strings.Repeat("t", 513)},
			"last_timestamp_ns": {int64(-1), int64(5)},
			"last_digest":       {nil, make([]byte, 31), make([]byte, 33), []byte{}},
		},
	}}

	for _, c := range checks {
		names := make([]string, len(c.columns))
		cols := make([]string, len(c.columns))
		for i, col := range c.columns {
			name, typ, _ := strings.Cut(col, " ")
			names[i] = name
			cols[i] = fmt.Sprintf("$%d::%s AS %s", i+1, typ, name)
		}
		old := make([]string, len(c.old))
		for i, o := range c.old {
			old[i] = "(" + o + ") IS NOT FALSE"
		}
		q := `SELECT ` + c.call + `, ` + strings.Join(old, " AND ") + ` FROM (SELECT ` + strings.Join(cols, ", ") + `) r`
		// rows are the valid row, then each try and pair changed in it.
		type row struct {
			what string
			args []any
		}
		rows := []row{{"the valid row", c.valid}}
		with := func(set map[string]any) []any {
			args := append([]any(nil), c.valid...)
			for name, v := range set {
				found := false
				for i, n := range names {
					if n == name {
						args[i], found = v, true
					}
				}
				if !found {
					t.Fatalf("%s has no column %s", c.table, name)
				}
			}
			return args
		}
		for name, vs := range c.tries {
			for _, v := range vs {
				rows = append(rows, row{fmt.Sprintf("%s = %q", name, fmt.Sprint(v)), with(map[string]any{name: v})})
			}
		}
		for _, p := range c.pairs {
			rows = append(rows, row{fmt.Sprint(p), with(p)})
		}
		refused := 0
		for _, r := range rows {
			var fn, want *bool
			if err := s.pool.QueryRow(ctx, q, r.args...).Scan(&fn, &want); err != nil {
				t.Fatalf("%s, %s: %v", c.table, r.what, err)
			}
			if fn == nil || want == nil || *fn != *want {
				t.Errorf("%s, %s: the function says %v, the constraints it replaced %v", c.table, r.what, deref(fn), deref(want))
			}
			if want != nil && !*want {
				refused++
			}
		}
		if refused == 0 || !func() bool { var ok bool; _ = s.pool.QueryRow(ctx, q, c.valid...).Scan(&ok, new(bool)); return ok }() {
			t.Errorf("%s: the cases do not try both sides (%d of %d refused)", c.table, refused, len(rows))
		}
	}

	// Each table's constraint is there and is the one a refused row names.
	for _, w := range []struct{ constraint, stmt string }{
		{"deliveries_row_check", `INSERT INTO deliveries (bridge_id, message_id, topic, sender_address, payload)
			VALUES ('` + b.ID + `', 'm-1', '/t', '0x` + hex40[1:] + `g', '')`},
		{"reply_outbox_row_check", `INSERT INTO reply_outbox (bridge_id, topic, timestamp_ns, envelope, status)
			VALUES ('` + b.ID + `', '/t', 1, '', 'succeeded')`},
		{"delivery_attempts_row_check", `INSERT INTO delivery_attempts (delivery_id, status_code) VALUES (1, 99)`},
		{"cursors_row_check", `INSERT INTO cursors (bridge_id, topic, last_timestamp_ns, last_digest)
			VALUES ('` + b.ID + `', '/t', 1, '\x00')`},
	} {
		_, err := s.pool.Exec(ctx, w.stmt)
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != "23514" || pgErr.ConstraintName != w.constraint {
			t.Errorf("a row %s refuses was written or refused otherwise: %v", w.constraint, err)
		}
		if !errors.Is(mapError(err), ErrInvalid) {
			t.Errorf("%s: the store's error is %v, not ErrInvalid", w.constraint, mapError(err))
		}
	}
}

func deref(b *bool) any {
	if b == nil {
		return nil
	}
	return *b
}
