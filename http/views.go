package http

import (
	"time"

	"github.com/xmtpbridge/bridge/persistence"
)

// redactedHeader replaces forward header values in responses: they often
// carry the owner's credentials for their endpoint, so they are write-only.
const redactedHeader = "<redacted>"

// accountView is an account in responses.
type accountView struct {
	ID         string    `json:"id"`
	Name       string    `json:"name"`
	SystemName string    `json:"systemName,omitempty"`
	CreatedAt  time.Time `json:"createdAt"`
}

func viewAccount(a persistence.Account) accountView {
	return accountView{ID: a.ID, Name: a.Name, SystemName: a.SystemName, CreatedAt: a.CreatedAt}
}

// apiKeyView is an API key, without its secret, in responses.
type apiKeyView struct {
	ID         string     `json:"id"`
	Prefix     string     `json:"prefix"`
	Name       string     `json:"name"`
	CreatedAt  time.Time  `json:"createdAt"`
	LastUsedAt *time.Time `json:"lastUsedAt"`
	RevokedAt  *time.Time `json:"revokedAt"`
}

func viewAPIKey(k persistence.APIKey) apiKeyView {
	return apiKeyView{ID: k.ID, Prefix: k.Prefix, Name: k.Name, CreatedAt: k.CreatedAt, LastUsedAt: k.LastUsedAt, RevokedAt: k.RevokedAt}
}

// forwardView is a forward handler configuration in responses.
type forwardView struct {
	URL            string            `json:"url"`
	BodyFormat     string            `json:"bodyFormat"`
	ReplyMode      string            `json:"replyMode"`
	Retry          string            `json:"retry"`
	TimeoutMs      int64             `json:"timeoutMs"`
	MaxConcurrency int               `json:"maxConcurrency"`
	Headers        map[string]string `json:"headers"`
	AllowSenders   []string          `json:"allowSenders"`
	DenySenders    []string          `json:"denySenders"`
}

// bridgeView is a bridge in responses.
type bridgeView struct {
	ID            string            `json:"id"`
	AccountID     string            `json:"accountId"`
	Address       string            `json:"address"`
	Name          string            `json:"name"`
	Status        string            `json:"status"`
	Forward       forwardView       `json:"forward"`
	Delivery      string            `json:"delivery"`
	Subscriptions subscriptionsView `json:"subscriptions"`
	CreatedAt     time.Time         `json:"createdAt"`
	UpdatedAt     time.Time         `json:"updatedAt"`
}

func viewBridge(b persistence.Bridge) bridgeView {
	headers := make(map[string]string, len(b.Forward.Headers))
	for k := range b.Forward.Headers {
		headers[k] = redactedHeader
	}
	allow, deny := b.Forward.AllowSenders, b.Forward.DenySenders
	if allow == nil {
		allow = []string{}
	}
	if deny == nil {
		deny = []string{}
	}
	return bridgeView{
		ID: b.ID, AccountID: b.AccountID, Address: b.Address, Name: b.Name, Status: string(b.Status),
		Forward: forwardView{
			URL: b.Forward.URL, BodyFormat: string(b.Forward.BodyFormat), ReplyMode: string(b.Forward.ReplyMode),
			Retry:     string(retryMode(b.Forward.Retry)),
			TimeoutMs: b.Forward.Timeout.Milliseconds(), MaxConcurrency: b.Forward.MaxConcurrency,
			Headers: headers, AllowSenders: allow, DenySenders: deny,
		},
		Delivery: string(b.Delivery), Subscriptions: viewSubscriptions(b.Subscriptions),
		CreatedAt: b.CreatedAt, UpdatedAt: b.UpdatedAt,
	}
}

func viewBridges(bs []persistence.Bridge) []bridgeView {
	out := make([]bridgeView, 0, len(bs))
	for _, b := range bs {
		out = append(out, viewBridge(b))
	}
	return out
}

func retryMode(m persistence.RetryMode) persistence.RetryMode {
	if m == "" {
		return persistence.RetryStandard
	}
	return m
}
