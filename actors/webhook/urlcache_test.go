package webhook

import (
	"context"
	"errors"
	"net/http"
	"testing"
)

// TestNewRequestURLIsAsNewRequestParsesIt holds the requests built from a
// cached URL to what http.NewRequest makes of the same URL, empty ports,
// user info and queries included, on the first request and on later ones.
func TestNewRequestURLIsAsNewRequestParsesIt(t *testing.T) {
	d := NewDeliverer(Config{})
	ctx := context.Background()
	for _, raw := range []string{
		"https://hooks.example.com/xmtp?token=abc",
		"http://hooks.example.com:/in",
		"http://[::1]:/in",
		"http://[::1]:8080/in",
		"https://user:pass@hooks.example.com:8443/a%2Fb?x=1#frag",
		"HTTP://Hooks.Example.com/in",
	} {
		want, err := http.NewRequest(http.MethodPost, raw, nil)
		if err != nil {
			t.Fatal(err)
		}
		ep := Endpoint{URL: raw, Format: FormatJSON, Secrets: []Secret{mustSecret(t, specSecret)}}
		for i := range 3 {
			req, err := d.NewRequest(ctx, ep, sampleMessage)
			if err != nil {
				t.Fatalf("%s, request %d: %v", raw, i, err)
			}
			if req.URL.String() != want.URL.String() || req.Host != want.Host || req.URL.Host != want.URL.Host {
				t.Fatalf("%s, request %d: url %q host %q, want url %q host %q", raw, i, req.URL, req.Host, want.URL, want.Host)
			}
			if req.ContentLength <= 0 || req.GetBody == nil || req.Context() != ctx {
				t.Fatalf("%s, request %d: content length %d, GetBody %v, context kept %v", raw, i, req.ContentLength, req.GetBody != nil, req.Context() == ctx)
			}
		}
	}
}

// TestNewRequestURLIsTheRequestsOwn changes everything a request's URL
// holds and checks that the next request to the same endpoint does not
// see it: the cached URL is copied.
func TestNewRequestURLIsTheRequestsOwn(t *testing.T) {
	d := NewDeliverer(Config{})
	raw := "https://user:pass@hooks.example.com/in?token=abc"
	ep := Endpoint{URL: raw, Format: FormatJSON, Secrets: []Secret{mustSecret(t, specSecret)}}
	first, err := d.NewRequest(context.Background(), ep, sampleMessage)
	if err != nil {
		t.Fatal(err)
	}
	first.URL.Host, first.URL.Path, first.URL.RawQuery = "elsewhere.example.com", "/other", "token=stolen"
	first.URL.User = nil
	second, err := d.NewRequest(context.Background(), ep, sampleMessage)
	if err != nil {
		t.Fatal(err)
	}
	if second.URL.String() != raw {
		t.Fatalf("second request's url %q, want %q", second.URL, raw)
	}
}

// TestNewRequestRefusesABadURLEveryTime checks that a URL that fails the
// check is refused on every request, not only the first.
func TestNewRequestRefusesABadURLEveryTime(t *testing.T) {
	d := NewDeliverer(Config{})
	for _, raw := range []string{"ftp://hooks.example.com/in", "/relative", "https://", "http://a b/", ""} {
		ep := Endpoint{URL: raw, Format: FormatJSON, Secrets: []Secret{mustSecret(t, specSecret)}}
		for i := range 2 {
			if _, err := d.NewRequest(context.Background(), ep, sampleMessage); !errors.Is(err, ErrInvalidEndpoint) {
				t.Fatalf("%q, request %d: error %v, want ErrInvalidEndpoint", raw, i, err)
			}
		}
	}
}
