package persistence

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"
)

// TestQuarantineIsBoundedPerBridge: a flood of 1 MiB inputs leaves each
// bridge its newest rows up to the cap, each with the input's hash, size
// and first bytes only, and does not touch another bridge's rows.
func TestQuarantineIsBoundedPerBridge(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _ := newTestStore(t)
	s.SetQuarantineRows(10)
	a, _ := newAccount(t, s, "alice")
	victim, _ := newBridge(t, s, a.ID, []byte("bundle"))
	other, _ := newBridge(t, s, a.ID, []byte("bundle"))
	if err := s.Quarantine(ctx, other.ID, "t", []byte("other"), "junk"); err != nil {
		t.Fatal(err)
	}
	big := bytes.Repeat([]byte{0xAB}, 1<<20)
	for i := range 25 {
		in := append([]byte(fmt.Sprintf("%04d", i)), big...)
		if err := s.Quarantine(ctx, victim.ID, strings.Repeat("t", 600), in, "rejected: "+strings.Repeat("é", 1500)); err != nil {
			t.Fatal(err)
		}
		if err := s.Quarantine(ctx, "", "", in, "no bridge"); err != nil {
			t.Fatal(err)
		}
	}
	qs, err := s.QuarantinedMessages(ctx, victim.ID, 100)
	if err != nil || len(qs) != 10 {
		t.Fatalf("victim keeps %d rows (%v), want the cap of 10", len(qs), err)
	}
	for i, q := range qs {
		n := 24 - i // newest first
		in := append([]byte(fmt.Sprintf("%04d", n)), big...)
		h := sha256.Sum256(in)
		if !bytes.Equal(q.Hash, h[:]) || q.Size != len(in) || !bytes.Equal(q.Envelope, in[:QuarantinePrefixBytes]) {
			t.Fatalf("row %d is not input %d's hash, size and prefix", i, n)
		}
		if len(q.Topic) != maxQuarantineTopic || !utf8.ValidString(q.Reason) || len(q.Reason) > maxQuarantineReason {
			t.Fatalf("row %d: topic %d bytes, reason %d bytes", i, len(q.Topic), len(q.Reason))
		}
	}
	var rows, stored int
	if err := s.pool.QueryRow(ctx, `SELECT count(*), coalesce(sum(pg_column_size(q.*)), 0) FROM quarantined_messages q`).Scan(&rows, &stored); err != nil {
		t.Fatal(err)
	}
	// 25 MiB of input from each writer; 21 rows of a few kilobytes stay.
	if rows != 21 || stored > 21*4096 {
		t.Fatalf("quarantine holds %d rows, %d bytes; want 21 rows (10 + 10 without a bridge + 1 other) under %d bytes",
			rows, stored, 21*4096)
	}
	if qs, err := s.QuarantinedMessages(ctx, other.ID, 10); err != nil || len(qs) != 1 || string(qs[0].Envelope) != "other" {
		t.Fatalf("the other bridge's row: %+v %v", qs, err)
	}
}

func FuzzCutText(f *testing.F) {
	f.Add("plain", 3)
	f.Add("ééé", 3)
	f.Add("\xff\xfe", 1)
	f.Add("日本語", 4)
	f.Add("", 0)
	f.Fuzz(func(t *testing.T, s string, n int) {
		if n < 0 || n > 1<<16 {
			return
		}
		got := cutText(s, n)
		if len(got) > n || !utf8.ValidString(got) {
			t.Fatalf("cutText(%q, %d) = %q", s, n, got)
		}
		if utf8.ValidString(s) && !strings.HasPrefix(s, got) {
			t.Fatalf("cutText(%q, %d) = %q is not a prefix", s, n, got)
		}
		if utf8.ValidString(s) && len(s) <= n && got != s {
			t.Fatalf("cutText(%q, %d) = %q changed a short valid text", s, n, got)
		}
	})
}
