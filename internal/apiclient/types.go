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
	TimeoutMs      int64             `json:"timeoutMs"`
	MaxConcurrency int               `json:"maxConcurrency"`
	Headers        map[string]string `json:"headers"`
	AllowSenders   []string          `json:"allowSenders"`
	DenySenders    []string          `json:"denySenders"`
}

// Bridge is a bridge identity and its configuration.
type Bridge struct {
	ID        string    `json:"id"`
	AccountID string    `json:"accountId"`
	Address   string    `json:"address"`
	Name      string    `json:"name"`
	Status    string    `json:"status"`
	Forward   Forward   `json:"forward"`
	CreatedAt time.Time `json:"createdAt"`
	UpdatedAt time.Time `json:"updatedAt"`
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
}

// Delivery is one message forwarded, or to be forwarded, to a bridge's
// endpoint. Payload is the base64 of the encoded XMTP content.
type Delivery struct {
	ID            string    `json:"id"`
	MessageID     string    `json:"messageId"`
	Topic         string    `json:"topic"`
	SenderAddress string    `json:"senderAddress"`
	SentNs        string    `json:"sentNs"`
	Payload       string    `json:"payload"`
	Status        string    `json:"status"`
	Attempts      int       `json:"attempts"`
	NextAttemptAt time.Time `json:"nextAttemptAt"`
	LastError     string    `json:"lastError"`
	CreatedAt     time.Time `json:"createdAt"`
	UpdatedAt     time.Time `json:"updatedAt"`
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
