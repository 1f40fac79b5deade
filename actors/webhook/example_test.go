package webhook_test

import (
	"fmt"
	"net/http"
	"time"

	"github.com/xmtpbridge/bridge/actors/webhook"
)

// A receiver checks each delivery with the bridge's webhook secret before
// trusting it, and uses webhook-id to drop repeats.
func ExampleVerify() {
	secret := "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	body := []byte(`{"test": 2432232314}`)
	h := http.Header{}
	h.Set("webhook-id", "msg_p5jXN8AQM9LWM0D4loKWxJek")
	h.Set("webhook-timestamp", "1614265330")
	h.Set("webhook-signature", "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=")

	now := time.Unix(1614265330, 0) // in a handler: time.Now()
	fmt.Println(webhook.Verify(secret, h, body, now))
	fmt.Println(webhook.Verify(secret, h, []byte(`{"test": 1}`), now))
	// Output:
	// <nil>
	// verify webhook: webhook signature does not match
}
