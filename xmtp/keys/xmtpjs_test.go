package keys

import (
	"encoding/base64"
	"encoding/json"
	"os"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
)

// xmtpjsFixtures is key material made by xmtp-js 12.1.0
// (xmtp/interop/js/fixtures.cjs).
type xmtpjsFixtures struct {
	Address            string `json:"address"`
	PrivateKeyBundleV1 string `json:"privateKeyBundleV1"`
	PrivateKeyBundleV2 string `json:"privateKeyBundleV2"`
	ContactV1          string `json:"contactV1"`
	ContactV2          string `json:"contactV2"`
	AuthToken          string `json:"authToken"`
	AuthTokenCreatedMs int64  `json:"authTokenCreatedMs"`
}

func loadFixtures(t *testing.T) (xmtpjsFixtures, func(string) []byte) {
	t.Helper()
	raw, err := os.ReadFile("testdata/xmtpjs.json")
	if err != nil {
		t.Fatal(err)
	}
	var f xmtpjsFixtures
	if err := json.Unmarshal(raw, &f); err != nil {
		t.Fatal(err)
	}
	return f, func(s string) []byte {
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
}

func TestXMTPJSContactBundles(t *testing.T) {
	f, b64 := loadFixtures(t)
	v1, err := DecodeContact(b64(f.ContactV1))
	if err != nil || v1.Address != f.Address {
		t.Fatalf("v1 contact: %v, %v", v1, err)
	}
	v2, err := DecodeContact(b64(f.ContactV2))
	if err != nil || v2.Address != f.Address {
		t.Fatalf("v2 contact: %v, %v", v2, err)
	}
	// The V1 form converted to V2 is byte-identical to the V2 form.
	if !proto.Equal(v1.Signed, v2.Signed) {
		t.Fatal("legacy conversion differs from xmtp-js")
	}
}

func TestXMTPJSAuthToken(t *testing.T) {
	f, _ := loadFixtures(t)
	created := time.UnixMilli(f.AuthTokenCreatedMs)
	addr, err := VerifyAuthToken(f.AuthToken, created.Add(time.Minute))
	if err != nil || addr != f.Address {
		t.Fatalf("token: %s, %v", addr, err)
	}
	if _, err := VerifyAuthToken(f.AuthToken, created.Add(2*time.Hour)); err == nil {
		t.Fatal("expired xmtp-js token accepted")
	}
}

func TestXMTPJSPrivateKeyBundles(t *testing.T) {
	f, b64 := loadFixtures(t)
	contact, err := DecodeContact(b64(f.ContactV2))
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string]string{"v1": f.PrivateKeyBundleV1, "v2": f.PrivateKeyBundleV2} {
		b, err := UnmarshalPrivateKeyBundle(b64(data))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if b.Address() != f.Address || !proto.Equal(b.PublicBundle(), contact.Signed) {
			t.Fatalf("%s: bundle does not match the xmtp-js contact", name)
		}
		// The imported identity can make tokens and contact envelopes.
		tok, err := b.AuthToken(time.Now())
		if err != nil {
			t.Fatalf("%s: token: %v", name, err)
		}
		if addr, err := VerifyAuthToken(tok, time.Now()); err != nil || addr != f.Address {
			t.Fatalf("%s: own token: %v", name, err)
		}
	}
}
