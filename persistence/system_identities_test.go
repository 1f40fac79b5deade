package persistence

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/xmtpbridge/bridge/persistence/pgtest"
)

func TestSystemIdentityGeneratedOnceAndSealed(t *testing.T) {
	url := pgtest.NewDatabase(t, testTemplate)
	key := testKey(t, "k1")
	st := openStore(t, url, mustSealer(t, key))
	ctx := context.Background()

	calls := 0
	gen := func() (string, []byte, error) {
		calls++
		return "0x00000000000000000000000000000000000000a1", []byte("bundle-secret-bytes"), nil
	}
	first, err := st.EnsureSystemIdentity(ctx, RoleCanary, gen)
	if err != nil {
		t.Fatalf("ensure canary identity: %v", err)
	}
	second, err := st.EnsureSystemIdentity(ctx, RoleCanary, func() (string, []byte, error) {
		t.Fatal("generated a second canary identity")
		return "", nil, nil
	})
	if err != nil {
		t.Fatalf("ensure canary identity again: %v", err)
	}
	if calls != 1 || first.Address != second.Address || !bytes.Equal(second.KeyBundle, []byte("bundle-secret-bytes")) {
		t.Fatalf("second load = %+v after %d generations, want the first identity", second, calls)
	}

	var raw []byte
	if err := st.Pool().QueryRow(ctx, `SELECT key_ciphertext FROM system_identities WHERE role = 'canary'`).Scan(&raw); err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw, []byte("bundle-secret")) {
		t.Fatal("the key bundle is stored in the clear")
	}

	// Another master key cannot open it.
	other := openStore(t, url, mustSealer(t, testKey(t, "k1")))
	if _, err := other.SystemIdentity(ctx, RoleCanary); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("open with another key: err = %v, want ErrDecrypt", err)
	}
	if _, err := st.SystemIdentity(ctx, RoleAPI); !errors.Is(err, ErrNotFound) {
		t.Fatalf("api identity before creation: err = %v, want ErrNotFound", err)
	}
	if _, err := st.EnsureSystemIdentity(ctx, "root", gen); !errors.Is(err, ErrUnknownRole) {
		t.Fatalf("unknown role: err = %v, want ErrUnknownRole", err)
	}
}

func TestSystemIdentityConcurrentStartsAgree(t *testing.T) {
	url := pgtest.NewDatabase(t, testTemplate)
	st := openStore(t, url, mustSealer(t, testKey(t, "k1")))
	ctx := context.Background()
	var wg sync.WaitGroup
	addrs := make([]string, 8)
	for i := range addrs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			addr := "0x" + string(bytes.Repeat([]byte{"0123456789"[i]}, 40))
			id, err := st.EnsureSystemIdentity(ctx, RoleAPI, func() (string, []byte, error) {
				return addr, []byte("bundle of " + addr), nil
			})
			if err != nil {
				t.Errorf("ensure api identity: %v", err)
				return
			}
			addrs[i] = id.Address
		}()
	}
	wg.Wait()
	for _, a := range addrs {
		if a != addrs[0] {
			t.Fatalf("nodes disagree on the api identity: %v", addrs)
		}
	}
}

func TestResealCoversSystemIdentities(t *testing.T) {
	url := pgtest.NewDatabase(t, testTemplate)
	old, fresh := testKey(t, "k1"), testKey(t, "k2")
	ctx := context.Background()
	before, err := openStore(t, url, mustSealer(t, old)).EnsureSystemIdentity(ctx, RoleAPI, func() (string, []byte, error) {
		return "0x00000000000000000000000000000000000000b1", []byte("api bundle"), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	rotated := openStore(t, url, mustSealer(t, fresh, old))
	if _, err := rotated.Reseal(ctx); err != nil {
		t.Fatalf("reseal: %v", err)
	}
	after, err := openStore(t, url, mustSealer(t, fresh)).SystemIdentity(ctx, RoleAPI)
	if err != nil {
		t.Fatalf("open with the new key alone after reseal: %v", err)
	}
	if !bytes.Equal(after.KeyBundle, before.KeyBundle) {
		t.Fatalf("key bundle changed across reseal")
	}
}
