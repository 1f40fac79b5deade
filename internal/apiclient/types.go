package apiclient

import "time"

// Account is an account as the API shows it.
type Account struct {
	ID         string    `json:"id"`
	Name       string    `json:"name"`
	SystemName string    `json:"systemName,omitempty"`
	CreatedAt  time.Time `json:"createdAt"`
}

// APIKey is an API key without its secret.
type APIKey struct {
	ID         string     `json:"id"`
	Prefix     string     `json:"prefix"`
	Name       string     `json:"name"`
	CreatedAt  time.Time  `json:"createdAt"`
	LastUsedAt *time.Time `json:"lastUsedAt"`
	RevokedAt  *time.Time `json:"revokedAt"`
}

// Forward is a bridge's forward handler configuration. Header values come
// back redacted.
type Forward struct {
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

// Bridge is a bridge identity and its configuration.
type Bridge struct {
	ID        string  `json:"id"`
	AccountID string  `json:"accountId"`
	Address   string  `json:"address"`
	Name      string  `json:"name"`
	Status    string  `json:"status"`
	Forward   Forward `json:"forward"`
	// Delivery is where inbound messages go: webhook, live or both.
	Delivery      string        `json:"delivery"`
	Subscriptions Subscriptions `json:"subscriptions"`
	CreatedAt     time.Time     `json:"createdAt"`
	UpdatedAt     time.Time     `json:"updatedAt"`
}

// Subscriptions is a bridge's /subscribe configuration.
type Subscriptions struct {
	Enabled         bool   `json:"enabled"`
	SubscribeWord   string `json:"subscribeWord"`
	UnsubscribeWord string `json:"unsubscribeWord"`
}

// Live is where a bridge's identity runs now.
type Live struct {
	// Live is "online" when a node hosts the identity, else "offline".
	Live  string `json:"live"`
	Node  string `json:"node,omitempty"`
	Since string `json:"since,omitempty"`
}

// ForwardChange is a forward configuration in a request: nil fields are
// left out, so the API keeps their value (or its default, on create).
type ForwardChange struct {
	URL            *string            `json:"url,omitempty"`
	BodyFormat     *string            `json:"bodyFormat,omitempty"`
	ReplyMode      *string            `json:"replyMode,omitempty"`
	Retry          *string            `json:"retry,omitempty"`
	TimeoutMs      *int64             `json:"timeoutMs,omitempty"`
	MaxConcurrency *int               `json:"maxConcurrency,omitempty"`
	Headers        *map[string]string `json:"headers,omitempty"`
	AllowSenders   *[]string          `json:"allowSenders,omitempty"`
	DenySenders    *[]string          `json:"denySenders,omitempty"`
}

// BridgeChange is the body of a bridge update; nil fields stay as they are.
type BridgeChange struct {
	Name    *string        `json:"name,omitempty"`
	Status  *string        `json:"status,omitempty"`
	Forward *ForwardChange `json:"forward,omitempty"`
	// Delivery is webhook, live or both.
	Delivery *string `json:"delivery,omitempty"`
}

// Delivery is one message forwarded, or to be forwarded, to a bridge's
// endpoint. Payload is the base64 of the encoded XMTP content; Text is its
// decoded text (nil when the content is not text or was purged), Reply the
// text the endpoint answered, if any. NextAttemptAt is nil once the
// delivery is final.
type Delivery struct {
	ID            string     `json:"id"`
	MessageID     string     `json:"messageId"`
	Topic         string     `json:"topic"`
	SenderAddress string     `json:"senderAddress"`
	SentNs        string     `json:"sentNs"`
	ContentType   string     `json:"contentType"`
	Text          *string    `json:"text"`
	Payload       string     `json:"payload"`
	Reply         *string    `json:"reply"`
	Status        string     `json:"status"`
	Attempts      int        `json:"attempts"`
	AttemptLog    []Attempt  `json:"attemptLog"`
	NextAttemptAt *time.Time `json:"nextAttemptAt"`
	LastError     string     `json:"lastError"`
	CreatedAt     time.Time  `json:"createdAt"`
	UpdatedAt     time.Time  `json:"updatedAt"`
	PurgedAt      *time.Time `json:"purgedAt"`
}

// Attempt is one HTTP attempt of a delivery. Status is nil when no answer
// came (a timeout, a refused connection).
type Attempt struct {
	At        time.Time `json:"at"`
	Status    *int      `json:"status"`
	LatencyMs float64   `json:"latencyMs"`
	Error     string    `json:"error"`
}

// SentMessage is the status of a message a bridge sent: queued, sent or
// failed.
type SentMessage struct {
	ID        string    `json:"id"`
	MessageID string    `json:"messageId"`
	Source    string    `json:"source"`
	To        string    `json:"to"`
	Status    string    `json:"status"`
	Attempts  int       `json:"attempts"`
	LastError string    `json:"lastError"`
	CreatedAt time.Time `json:"createdAt"`
	UpdatedAt time.Time `json:"updatedAt"`
}

// Plugin is an uploaded Wasm plug-in.
type Plugin struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	Version   int       `json:"version"`
	SHA256    string    `json:"sha256"`
	Size      int64     `json:"size"`
	Exports   []string  `json:"exports"`
	CreatedAt time.Time `json:"createdAt"`
	UpdatedAt time.Time `json:"updatedAt"`
}

// Binding is a plug-in bound to an extension point of a bridge.
type Binding struct {
	Bridge         string            `json:"bridge"`
	ExtensionPoint string            `json:"extensionPoint"`
	Plugin         string            `json:"plugin"`
	SHA256         string            `json:"sha256"`
	Config         map[string]string `json:"config"`
	OnError        string            `json:"onError"`
}

// Subscriber is an XMTP address subscribed to a bridge's broadcasts.
type Subscriber struct {
	Address   string    `json:"address"`
	CreatedAt time.Time `json:"createdAt"`
}

// Broadcast is the progress of a broadcast: copies sent, failed, pending.
type Broadcast struct {
	ID         string             `json:"id"`
	Recipients int                `json:"recipients"`
	Sent       int                `json:"sent"`
	Failed     int                `json:"failed"`
	Pending    int                `json:"pending"`
	Failures   []BroadcastFailure `json:"failures"`
	CreatedAt  time.Time          `json:"createdAt"`
}

// BroadcastFailure is a copy of a broadcast that was not sent.
type BroadcastFailure struct {
	Address string `json:"address"`
	Reason  string `json:"reason"`
}

// Member is a member of the cluster.
type Member struct {
	ID       string `json:"id"`
	Node     string `json:"node"`
	Address  string `json:"address"`
	Self     bool   `json:"self"`
	Hosted   int    `json:"hosted"`
	Draining bool   `json:"draining"`
}

// Members is the cluster as the answering node sees it.
type Members struct {
	Provider string   `json:"provider"`
	Self     string   `json:"self"`
	Members  []Member `json:"members"`
}

// Placement is an identity with a live lease and the node hosting it.
type Placement struct {
	BridgeID  string `json:"bridgeId"`
	Address   string `json:"address"`
	Node      string `json:"node"`
	Owner     string `json:"owner"`
	Epoch     int64  `json:"epoch"`
	ExpiresAt string `json:"expiresAt"`
}
