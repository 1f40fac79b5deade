package apiclient

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
)

func bridgePath(id string, parts ...string) string {
	p := "/v1/bridges/" + url.PathEscape(id)
	for _, part := range parts {
		p += "/" + url.PathEscape(part)
	}
	return p
}

// Delivery returns one delivery of a bridge with its attempt history.
func (c *Client) Delivery(ctx context.Context, id, deliveryID string) (Delivery, error) {
	var out struct {
		Delivery Delivery `json:"delivery"`
	}
	err := c.do(ctx, http.MethodGet, bridgePath(id, "deliveries", deliveryID), nil, nil, &out)
	return out.Delivery, err
}

// SentMessage returns the status of a message a bridge sent.
func (c *Client) SentMessage(ctx context.Context, id, messageID string) (SentMessage, error) {
	var out struct {
		Message SentMessage `json:"message"`
	}
	err := c.do(ctx, http.MethodGet, bridgePath(id, "messages", messageID), nil, nil, &out)
	return out.Message, err
}

// SentMessages returns a page of the messages a bridge sent, newest first,
// and the cursor of the next page.
func (c *Client) SentMessages(ctx context.Context, id, cursor string, limit int) ([]SentMessage, string, error) {
	q := pageQuery(cursor, "")
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	var out struct {
		Messages   []SentMessage `json:"messages"`
		NextCursor string        `json:"nextCursor"`
	}
	err := c.do(ctx, http.MethodGet, bridgePath(id, "messages"), q, nil, &out)
	return out.Messages, out.NextCursor, err
}

// PushPlugin uploads a Wasm module as the plug-in name (a new plug-in, or
// its next version); created says which.
func (c *Client) PushPlugin(ctx context.Context, name string, wasm []byte) (Plugin, bool, error) {
	var out struct {
		Plugin Plugin `json:"plugin"`
	}
	status, err := c.raw(ctx, http.MethodPost, "/v1/plugins", url.Values{"name": {name}}, "application/wasm", wasm, &out)
	return out.Plugin, status == http.StatusCreated, err
}

// Plugins lists the account's plug-ins.
func (c *Client) Plugins(ctx context.Context) ([]Plugin, error) {
	var out struct {
		Plugins []Plugin `json:"plugins"`
	}
	err := c.do(ctx, http.MethodGet, "/v1/plugins", nil, nil, &out)
	return out.Plugins, err
}

// DeletePlugin deletes a plug-in nothing is bound to.
func (c *Client) DeletePlugin(ctx context.Context, pluginID string) error {
	return c.do(ctx, http.MethodDelete, "/v1/plugins/"+url.PathEscape(pluginID), nil, nil, nil)
}

// BindPlugin binds a plug-in to an extension point of a bridge; onError
// "" is the API's default.
func (c *Client) BindPlugin(ctx context.Context, id, point, pluginID string, config map[string]string, onError string) (Binding, error) {
	body := struct {
		Plugin  string            `json:"plugin"`
		Config  map[string]string `json:"config,omitempty"`
		OnError string            `json:"onError,omitempty"`
	}{pluginID, config, onError}
	var out struct {
		Binding Binding `json:"binding"`
	}
	err := c.do(ctx, http.MethodPut, bridgePath(id, "plugins", point), nil, body, &out)
	return out.Binding, err
}

// UnbindPlugin removes the plug-in bound to an extension point.
func (c *Client) UnbindPlugin(ctx context.Context, id, point string) error {
	return c.do(ctx, http.MethodDelete, bridgePath(id, "plugins", point), nil, nil, nil)
}

// Subscribers returns every subscriber of a bridge, page after page.
func (c *Client) Subscribers(ctx context.Context, id string) ([]Subscriber, error) {
	var all []Subscriber
	cursor := ""
	for i := 0; i < maxPages; i++ {
		var out struct {
			Subscribers []Subscriber `json:"subscribers"`
			NextCursor  string       `json:"nextCursor"`
		}
		if err := c.do(ctx, http.MethodGet, bridgePath(id, "subscribers"), pageQuery(cursor, ""), nil, &out); err != nil {
			return nil, err
		}
		all = append(all, out.Subscribers...)
		if out.NextCursor == "" || len(out.Subscribers) == 0 {
			break
		}
		cursor = out.NextCursor
	}
	return all, nil
}

// RemoveSubscriber removes a subscriber of a bridge.
func (c *Client) RemoveSubscriber(ctx context.Context, id, address string) error {
	return c.do(ctx, http.MethodDelete, bridgePath(id, "subscribers", address), nil, nil, nil)
}

// Broadcast sends text to every current subscriber of a bridge; it returns
// the broadcast's id and its number of recipients.
func (c *Client) Broadcast(ctx context.Context, id, text string) (string, int, error) {
	var out struct {
		ID         string `json:"id"`
		Recipients int    `json:"recipients"`
	}
	err := c.do(ctx, http.MethodPost, bridgePath(id, "broadcasts"), nil, map[string]string{"content": text}, &out)
	return out.ID, out.Recipients, err
}

// BroadcastStatus counts a broadcast's copies.
func (c *Client) BroadcastStatus(ctx context.Context, id, broadcastID string) (Broadcast, error) {
	var out struct {
		Broadcast Broadcast `json:"broadcast"`
	}
	err := c.do(ctx, http.MethodGet, bridgePath(id, "broadcasts", broadcastID), nil, nil, &out)
	return out.Broadcast, err
}

// raw sends a body that is not JSON and returns the answer's status.
func (c *Client) raw(ctx context.Context, method, path string, query url.Values, contentType string, body []byte, out any) (int, error) {
	status := 0
	err := c.send(ctx, method, path, query, contentType, bytes.NewReader(body), func(res *http.Response, raw []byte) error {
		status = res.StatusCode
		if out == nil {
			return nil
		}
		if err := json.Unmarshal(raw, out); err != nil {
			return fmt.Errorf("decode answer of %s %s: %w", method, path, err)
		}
		return nil
	})
	return status, err
}
