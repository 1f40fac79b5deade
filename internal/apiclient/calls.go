package apiclient

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
)

// maxPages bounds how many pages the All calls read: 1000 pages of the
// API's largest page size.
const maxPages = 1000

// CreateAccount signs up an account and returns it with its first API key.
func (c *Client) CreateAccount(ctx context.Context, name, signupKey string) (Account, string, error) {
	var out struct {
		Account Account `json:"account"`
		APIKey  string  `json:"apiKey"`
	}
	err := c.do(ctx, http.MethodPost, "/v1/accounts", nil, map[string]string{"name": name, "signupKey": signupKey}, &out)
	return out.Account, out.APIKey, err
}

// Account returns the account of the API key.
func (c *Client) Account(ctx context.Context) (Account, error) {
	var out struct {
		Account Account `json:"account"`
	}
	err := c.do(ctx, http.MethodGet, "/v1/account", nil, nil, &out)
	return out.Account, err
}

// APIKeys lists the account's API keys.
func (c *Client) APIKeys(ctx context.Context) ([]APIKey, error) {
	var out struct {
		APIKeys []APIKey `json:"apiKeys"`
	}
	err := c.do(ctx, http.MethodGet, "/v1/api-keys", nil, nil, &out)
	return out.APIKeys, err
}

// CreateAPIKey adds an API key and returns it with its secret, shown once.
func (c *Client) CreateAPIKey(ctx context.Context, name string) (APIKey, string, error) {
	var out struct {
		APIKey     string `json:"apiKey"`
		APIKeyInfo APIKey `json:"apiKeyInfo"`
	}
	err := c.do(ctx, http.MethodPost, "/v1/api-keys", nil, map[string]string{"name": name}, &out)
	return out.APIKeyInfo, out.APIKey, err
}

// RevokeAPIKey revokes an API key.
func (c *Client) RevokeAPIKey(ctx context.Context, id string) error {
	return c.do(ctx, http.MethodDelete, "/v1/api-keys/"+url.PathEscape(id), nil, nil, nil)
}

// Bridges returns every bridge of the account, page after page.
func (c *Client) Bridges(ctx context.Context) ([]Bridge, error) {
	var all []Bridge
	cursor := ""
	for i := 0; i < maxPages; i++ {
		var out struct {
			Bridges    []Bridge `json:"bridges"`
			NextCursor string   `json:"nextCursor"`
		}
		if err := c.do(ctx, http.MethodGet, "/v1/bridges", pageQuery(cursor, ""), nil, &out); err != nil {
			return nil, err
		}
		all = append(all, out.Bridges...)
		if out.NextCursor == "" || len(out.Bridges) == 0 {
			break
		}
		cursor = out.NextCursor
	}
	return all, nil
}

// CreateBridge creates a bridge and returns it with its webhook secret,
// shown once.
// delivery nil is the API's default (webhook).
func (c *Client) CreateBridge(ctx context.Context, name string, fwd ForwardChange, delivery *string) (Bridge, string, error) {
	var out struct {
		Bridge        Bridge `json:"bridge"`
		WebhookSecret string `json:"webhookSecret"`
	}
	body := struct {
		Name     string        `json:"name"`
		Forward  ForwardChange `json:"forward"`
		Delivery *string       `json:"delivery,omitempty"`
	}{name, fwd, delivery}
	err := c.do(ctx, http.MethodPost, "/v1/bridges", nil, body, &out)
	return out.Bridge, out.WebhookSecret, err
}

// Bridge returns a bridge and, on a node with the runtime, where it runs.
func (c *Client) Bridge(ctx context.Context, id string) (Bridge, *Live, error) {
	var out struct {
		Bridge Bridge `json:"bridge"`
		Live   *Live  `json:"live"`
	}
	err := c.do(ctx, http.MethodGet, "/v1/bridges/"+url.PathEscape(id), nil, nil, &out)
	return out.Bridge, out.Live, err
}

// UpdateBridge changes a bridge and returns it.
func (c *Client) UpdateBridge(ctx context.Context, id string, change BridgeChange) (Bridge, error) {
	var out struct {
		Bridge Bridge `json:"bridge"`
	}
	err := c.do(ctx, http.MethodPatch, "/v1/bridges/"+url.PathEscape(id), nil, change, &out)
	return out.Bridge, err
}

// DeleteBridge deletes a bridge and all its data.
func (c *Client) DeleteBridge(ctx context.Context, id string) error {
	return c.do(ctx, http.MethodDelete, "/v1/bridges/"+url.PathEscape(id), nil, nil, nil)
}

// RotateWebhookSecret issues a new webhook secret; the old one stays valid
// for grace seconds (nil: the node's default). It returns the new secret
// and how long the old one stays valid, in seconds.
func (c *Client) RotateWebhookSecret(ctx context.Context, id string, grace *int64) (string, int64, error) {
	var out struct {
		WebhookSecret string `json:"webhookSecret"`
		ValidFor      int64  `json:"previousSecretValidFor"`
	}
	var body any
	if grace != nil {
		body = map[string]int64{"graceSeconds": *grace}
	}
	err := c.do(ctx, http.MethodPost, "/v1/bridges/"+url.PathEscape(id)+"/webhook-secret/rotate", nil, body, &out)
	return out.WebhookSecret, out.ValidFor, err
}

// Send sends a text message from a bridge and returns the message id.
func (c *Client) Send(ctx context.Context, id, to, text string) (string, error) {
	var out struct {
		MessageID string `json:"messageId"`
	}
	err := c.do(ctx, http.MethodPost, "/v1/bridges/"+url.PathEscape(id)+"/messages", nil, map[string]string{"to": to, "content": text}, &out)
	return out.MessageID, err
}

// Deliveries returns a page of a bridge's deliveries, of one status when
// status is not empty, and the cursor of the next page.
func (c *Client) Deliveries(ctx context.Context, id, status, cursor string, limit int) ([]Delivery, string, error) {
	q := pageQuery(cursor, status)
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	var out struct {
		Deliveries []Delivery `json:"deliveries"`
		NextCursor string     `json:"nextCursor"`
	}
	err := c.do(ctx, http.MethodGet, "/v1/bridges/"+url.PathEscape(id)+"/deliveries", q, nil, &out)
	return out.Deliveries, out.NextCursor, err
}

// DeadLetters returns every dead letter of a bridge, page after page.
func (c *Client) DeadLetters(ctx context.Context, id string) ([]Delivery, error) {
	var all []Delivery
	cursor := ""
	for i := 0; i < maxPages; i++ {
		var out struct {
			DeadLetters []Delivery `json:"deadLetters"`
			NextCursor  string     `json:"nextCursor"`
		}
		if err := c.do(ctx, http.MethodGet, "/v1/bridges/"+url.PathEscape(id)+"/dead-letters", pageQuery(cursor, ""), nil, &out); err != nil {
			return nil, err
		}
		all = append(all, out.DeadLetters...)
		if out.NextCursor == "" || len(out.DeadLetters) == 0 {
			break
		}
		cursor = out.NextCursor
	}
	return all, nil
}

// Replay puts a dead letter back in the delivery queue.
func (c *Client) Replay(ctx context.Context, id, deliveryID string) (Delivery, error) {
	var out struct {
		Delivery Delivery `json:"delivery"`
	}
	err := c.do(ctx, http.MethodPost, "/v1/bridges/"+url.PathEscape(id)+"/dead-letters/"+url.PathEscape(deliveryID)+"/replay", nil, nil, &out)
	return out.Delivery, err
}

// ClusterMembers lists the members of the cluster (admin token).
func (c *Client) ClusterMembers(ctx context.Context) (Members, error) {
	var out Members
	err := c.do(ctx, http.MethodGet, "/v1/admin/cluster/members", nil, nil, &out)
	return out, err
}

// Placement lists the identities with a live lease, of one node when node
// is not empty (admin token).
func (c *Client) Placement(ctx context.Context, node string) ([]Placement, error) {
	q := url.Values{}
	if node != "" {
		q.Set("node", node)
	}
	var out struct {
		Identities []Placement `json:"identities"`
	}
	err := c.do(ctx, http.MethodGet, "/v1/admin/cluster/placement", q, nil, &out)
	return out.Identities, err
}

// Drain moves a node's identities to the other members and makes it leave
// the cluster; it returns how many identities moved (admin token).
func (c *Client) Drain(ctx context.Context, node string) (int, error) {
	var out struct {
		Identities int `json:"identities"`
	}
	err := c.do(ctx, http.MethodPost, "/v1/admin/nodes/"+url.PathEscape(node)+"/drain", nil, nil, &out)
	return out.Identities, err
}

func pageQuery(cursor, status string) url.Values {
	q := url.Values{}
	if cursor != "" {
		q.Set("cursor", cursor)
	}
	if status != "" {
		q.Set("status", status)
	}
	return q
}
