package webhook

import (
	"net/http"
	"strings"
	"time"
)

// Outcome classifies one delivery attempt by Standard Webhooks semantics.
type Outcome string

// The outcomes of a delivery attempt.
const (
	// OutcomeDelivered is a 2xx whose reply (if the endpoint replies) was
	// read.
	OutcomeDelivered Outcome = "delivered"
	// OutcomeBadReply is a 2xx whose body could not be read as a reply in
	// reply mode. The delivery happened; retrying would not help.
	OutcomeBadReply Outcome = "bad_reply"
	// OutcomeThrottled is 429, 502, 503 or 504: retry, honouring
	// Result.RetryAfter.
	OutcomeThrottled Outcome = "throttled"
	// OutcomeRetry is another 5xx, a network error or a timeout: retry.
	OutcomeRetry Outcome = "retry"
	// OutcomeGone is 410: the endpoint is gone and the caller disables it.
	OutcomeGone Outcome = "gone"
	// OutcomeRejected is any other non-2xx status (another 4xx, or a 3xx
	// that was not followed). Standard Webhooks retries it like any
	// failure; a bridge whose retry mode is RetryFinal4xx makes it final.
	OutcomeRejected Outcome = "rejected"
	// OutcomeBlocked is a target refused by the SSRF guard or the redirect
	// limit: a permanent failure.
	OutcomeBlocked Outcome = "blocked"
	// OutcomeInvalid is a delivery the bridge could not send at all (an
	// endpoint without a valid URL or secret, a payload it cannot
	// decode): a permanent failure, and no request was made.
	OutcomeInvalid Outcome = "invalid"
)

// Outcomes lists every outcome, for metrics that pre-create their series.
var Outcomes = []Outcome{OutcomeDelivered, OutcomeBadReply, OutcomeThrottled, OutcomeRetry, OutcomeGone,
	OutcomeRejected, OutcomeBlocked, OutcomeInvalid}

// Retryable reports whether the attempt should be tried again later under
// the Standard Webhooks rule: every failed answer but 410, and every
// failure to get an answer, is retried.
func (o Outcome) Retryable() bool {
	return o == OutcomeThrottled || o == OutcomeRetry || o == OutcomeRejected
}

// classifyStatus maps a response status to an outcome; 2xx is reported as
// delivered and refined by the caller.
func classifyStatus(status int) Outcome {
	switch {
	case status >= 200 && status < 300:
		return OutcomeDelivered
	case status == http.StatusTooManyRequests, status == http.StatusBadGateway,
		status == http.StatusServiceUnavailable, status == http.StatusGatewayTimeout:
		return OutcomeThrottled
	case status == http.StatusGone:
		return OutcomeGone
	case status >= 500:
		return OutcomeRetry
	default:
		return OutcomeRejected
	}
}

// statusClass is the metric label of a status: "2xx" … "5xx", or "none"
// when there was no response.
func statusClass(status int) string { return statusClassOf(statusClassIndex(status)) }

// statusClassIndex is 0 for no response and 1 to 5 for 1xx to 5xx.
func statusClassIndex(status int) int {
	if status < 100 || status > 599 {
		return 0
	}
	return status / 100
}

// statusClassOf is the label of a statusClassIndex.
func statusClassOf(i int) string {
	return [...]string{"none", "1xx", "2xx", "3xx", "4xx", "5xx"}[i]
}

// maxRetryAfterSeconds bounds the delay-seconds form so that it cannot
// overflow a time.Duration.
const maxRetryAfterSeconds = 10 * 365 * 24 * 3600

// ParseRetryAfter reads a Retry-After value, either delay-seconds or an
// HTTP date, as a delay from now. A date in the past is a zero delay. It
// reports false when the value is neither form.
func ParseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" || len(v) > 64 {
		return 0, false
	}
	if v[0] >= '0' && v[0] <= '9' {
		n := 0
		for i := 0; i < len(v); i++ {
			c := v[i]
			if c < '0' || c > '9' {
				return 0, false
			}
			n = n*10 + int(c-'0')
			if n > maxRetryAfterSeconds {
				n = maxRetryAfterSeconds
			}
		}
		return time.Duration(n) * time.Second, true
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	d := t.Sub(now)
	if d < 0 {
		d = 0
	}
	return d, true
}
