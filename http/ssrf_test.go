package http

import (
	"context"
	"errors"
	"net"
	"testing"
)

func TestTargetPolicy(t *testing.T) {
	t.Parallel()
	strict := &targetPolicy{resolver: net.DefaultResolver}
	loose := &targetPolicy{allowPrivate: true, resolver: net.DefaultResolver}
	for _, tc := range []struct {
		url  string
		code string // "" means allowed
	}{
		{"https://8.8.8.8/hook", ""},
		{"http://1.1.1.1:8080/x?y=1", ""},
		{"https://[2606:4700:4700::1111]/", ""},
		{"http://127.0.0.1/", CodeUnsafeTarget},
		{"http://127.1.2.3:9000/", CodeUnsafeTarget},
		{"http://localhost:8080/", CodeUnsafeTarget},
		{"http://10.1.2.3/", CodeUnsafeTarget},
		{"http://172.16.0.1/", CodeUnsafeTarget},
		{"http://192.168.1.1/", CodeUnsafeTarget},
		{"http://169.254.169.254/latest/meta-data/", CodeUnsafeTarget},
		{"http://100.64.0.1/", CodeUnsafeTarget},
		{"http://0.0.0.0/", CodeUnsafeTarget},
		{"http://224.0.0.1/", CodeUnsafeTarget},
		{"http://255.255.255.255/", CodeUnsafeTarget},
		{"http://[::1]/", CodeUnsafeTarget},
		{"http://[::]/", CodeUnsafeTarget},
		{"http://[fd00::1]/", CodeUnsafeTarget},
		{"http://[fe80::1]/", CodeUnsafeTarget},
		{"http://[ff02::1]/", CodeUnsafeTarget},
		{"http://[::ffff:127.0.0.1]/", CodeUnsafeTarget},
		{"http://[::ffff:10.0.0.1]/", CodeUnsafeTarget},
		{"http://[64:ff9b::7f00:1]/", CodeUnsafeTarget},
		{"http://[::127.0.0.1]/", CodeUnsafeTarget},
		{"http://[::7f00:1]:8080/", CodeUnsafeTarget},
		{"http://[::ffff:0:7f00:1]/", CodeUnsafeTarget},
		{"http://[fec0::1]/", CodeUnsafeTarget},
		{"http://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/", CodeUnsafeTarget},
		{"http://[2001:2::1]/", CodeUnsafeTarget},
		{"http://[3fff::1]/", CodeUnsafeTarget},
		{"http://[5f00::1]/", CodeUnsafeTarget},
		{"http://[2002:7f00:1::1]/", CodeUnsafeTarget},
		{"http://[fe80::1%25eth0]/", CodeUnsafeTarget},
		{"http://192.88.99.1/", CodeUnsafeTarget},
		{"https://[64:ff9b::808:808]/", ""},
		{"https://[2002:808:808::1]/", ""},
		{"ftp://8.8.8.8/", CodeInvalidField},
		{"file:///etc/passwd", CodeInvalidField},
		{"gopher://8.8.8.8/", CodeInvalidField},
		{"https://user:pass@8.8.8.8/", CodeInvalidField},
		{"https:///nohost", CodeInvalidField},
		{"https://8.8.8.8:99999/", CodeInvalidField},
		{"not a url at all", CodeInvalidField},
		{"https://8.8.8.8/#frag", CodeInvalidField},
	} {
		err := strict.check(context.Background(), "url", tc.url)
		if tc.code == "" {
			if err != nil {
				t.Errorf("%s refused: %v", tc.url, err)
			}
			continue
		}
		var e *Error
		if !errors.As(err, &e) || e.Code != tc.code || e.Status != 400 {
			t.Errorf("%s: got %v, want code %s", tc.url, err, tc.code)
		}
		if tc.code == CodeUnsafeTarget {
			if err := loose.check(context.Background(), "url", tc.url); err != nil {
				t.Errorf("%s refused with private targets allowed: %v", tc.url, err)
			}
		}
	}
}
