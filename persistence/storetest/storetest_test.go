package storetest

import (
	"bytes"
	"testing"

	"github.com/xmtpbridge/bridge/persistence"
	"github.com/xmtpbridge/bridge/persistence/pgtest"
)

// TestSealersHaveTheirOwnKeys: two sealers of Sealer do not open each
// other's sealed data, and a store of Open answers on its database.
func TestSealersHaveTheirOwnKeys(t *testing.T) {
	a, b := Sealer(t), Sealer(t)
	sealed, err := a.Seal([]byte("secret"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := a.Open(sealed, nil); err != nil || !bytes.Equal(got, []byte("secret")) {
		t.Fatalf("open with its own sealer: %q, %v", got, err)
	}
	if _, err := b.Open(sealed, nil); err == nil {
		t.Fatal("another sealer opened the sealed data")
	}
	db := pgtest.NewDatabase(t, pgtest.Template{Name: "storetest", Migrate: persistence.Migrate})
	st := Open(t, db, a)
	if err := st.Pool().Ping(t.Context()); err != nil {
		t.Fatalf("ping the store's database: %v", err)
	}
}
