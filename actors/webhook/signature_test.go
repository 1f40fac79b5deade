package webhook

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The Standard Webhooks specification's example.
const (
	specSecret    = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	specID        = "msg_p5jXN8AQM9LWM0D4loKWxJek"
	specTimestamp = 1614265330
	specBody      = `{"test": 2432232314}`
	specSignature = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
)

func mustSecret(t testing.TB, s string) Secret {
	t.Helper()
	sec, err := ParseSecret(s)
	if err != nil {
		t.Fatalf("parse secret: %v", err)
	}
	return sec
}

func specHeaders(sig string) http.Header {
	h := http.Header{}
	h.Set(HeaderID, specID)
	h.Set(HeaderTimestamp, strconv.Itoa(specTimestamp))
	h.Set(HeaderSignature, sig)
	return h
}

func TestSignMatchesTheSpecificationExample(t *testing.T) {
	got := Sign(specID, specTimestamp, []byte(specBody), mustSecret(t, specSecret))
	if got != specSignature {
		t.Fatalf("signature %q, want %q", got, specSignature)
	}
	if err := Verify(specSecret, specHeaders(got), []byte(specBody), time.Unix(specTimestamp+60, 0)); err != nil {
		t.Fatalf("verify: %v", err)
	}
}

func TestVerifyRefusesTampering(t *testing.T) {
	now := time.Unix(specTimestamp, 0)
	other := "whsec_" + strings.Repeat("QUJD", 8)
	cases := []struct {
		name   string
		secret string
		h      http.Header
		body   string
		now    time.Time
		want   error
	}{
		{"body changed", specSecret, specHeaders(specSignature), `{"test": 2432232315}`, now, ErrSignatureMismatch},
		{"other secret", other, specHeaders(specSignature), specBody, now, ErrSignatureMismatch},
		{"id changed", specSecret, func() http.Header { h := specHeaders(specSignature); h.Set(HeaderID, "msg_x"); return h }(), specBody, now, ErrSignatureMismatch},
		{"timestamp changed", specSecret, func() http.Header {
			h := specHeaders(specSignature)
			h.Set(HeaderTimestamp, strconv.Itoa(specTimestamp+1))
			return h
		}(), specBody, now, ErrSignatureMismatch},
		{"too old", specSecret, specHeaders(specSignature), specBody, now.Add(DefaultTolerance + time.Second), ErrTimestampOutOfRange},
		{"from the future", specSecret, specHeaders(specSignature), specBody, now.Add(-DefaultTolerance - time.Second), ErrTimestampOutOfRange},
		{"no signature", specSecret, func() http.Header { h := specHeaders(specSignature); h.Del(HeaderSignature); return h }(), specBody, now, ErrMissingHeader},
		{"bad timestamp", specSecret, func() http.Header { h := specHeaders(specSignature); h.Set(HeaderTimestamp, "soon"); return h }(), specBody, now, ErrInvalidTimestamp},
		{"bad header", specSecret, specHeaders("v1"), specBody, now, ErrInvalidSignatureHeader},
		{"only other versions", specSecret, specHeaders("v1a,abc"), specBody, now, ErrSignatureMismatch},
		{"bad secret", "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", specHeaders(specSignature), specBody, now, ErrInvalidSecret},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := Verify(c.secret, c.h, []byte(c.body), c.now)
			if !errors.Is(err, c.want) {
				t.Fatalf("verify = %v, want %v", err, c.want)
			}
		})
	}
}

func TestSignWithRotatedSecretsVerifiesUnderEach(t *testing.T) {
	current := mustSecret(t, "whsec_Y3VycmVudC1zZWNyZXQta2V5LTAxMjM0NTY3ODk=")
	old := mustSecret(t, specSecret)
	sig := Sign(specID, specTimestamp, []byte(specBody), current, old)
	parts := strings.Split(sig, " ")
	if len(parts) != 2 || parts[1] != specSignature {
		t.Fatalf("signature header %q: want two signatures, the old secret's second", sig)
	}
	now := time.Unix(specTimestamp, 0)
	for _, s := range []string{"whsec_Y3VycmVudC1zZWNyZXQta2V5LTAxMjM0NTY3ODk=", specSecret} {
		if err := Verify(s, specHeaders(sig), []byte(specBody), now); err != nil {
			t.Fatalf("verify with one of the secrets: %v", err)
		}
	}
}

func TestParseSecret(t *testing.T) {
	for _, bad := range []string{"", "whsec_", "whsec_!!!", "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_YWJj"} {
		if _, err := ParseSecret(bad); !errors.Is(err, ErrInvalidSecret) {
			t.Errorf("ParseSecret(%q) = %v, want ErrInvalidSecret", bad, err)
		}
	}
	if list, err := ParseSecrets(specSecret, specSecret); err != nil || len(list) != 2 {
		t.Fatalf("ParseSecrets = %v, %v", list, err)
	}
	if _, err := ParseSecrets(specSecret, "whsec_"); !errors.Is(err, ErrInvalidSecret) {
		t.Fatalf("ParseSecrets with a bad secret = %v", err)
	}
	s := mustSecret(t, specSecret)
	for _, text := range []string{fmt.Sprint(s), fmt.Sprintf("%v %+v %#v %s", s, s, s, s)} {
		if strings.Contains(text, "MfKQ") || strings.Contains(text, string(s.key)) {
			t.Fatalf("secret shows its key in %q", text)
		}
	}
}

func TestParseSignatureHeader(t *testing.T) {
	sigs, err := ParseSignatureHeader("v1a,xyz " + specSignature + "  v2,abc")
	if err != nil || len(sigs) != 1 {
		t.Fatalf("parse = %v, %v; want one v1 signature", sigs, err)
	}
	for _, bad := range []string{"", "   ", "v1,", ",abc", "v1,not-base64!", "v1,YWJj", strings.Repeat(specSignature+" ", maxSignatures+1)} {
		if _, err := ParseSignatureHeader(bad); !errors.Is(err, ErrInvalidSignatureHeader) {
			t.Errorf("parse %q = %v, want ErrInvalidSignatureHeader", bad, err)
		}
	}
}
