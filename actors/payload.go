package actors

import (
	"fmt"

	"github.com/xmtpbridge/bridge/xmtp/content"
	"github.com/xmtpbridge/bridge/xmtp/conversation"
)

// A delivery's payload is the message's EncodedContent, as the sender
// encoded it, without compression. The topic, sender and sent time live in
// the delivery row; the conversation id comes from the conversation.

func encodePayload(m *conversation.Message) ([]byte, error) {
	if m.Content == nil {
		return nil, fmt.Errorf("encode payload of %s: %w", m.ID, conversation.ErrBadContent)
	}
	b, err := content.Encode(m.Content)
	if err != nil {
		return nil, fmt.Errorf("encode payload of %s: %w", m.ID, err)
	}
	return b, nil
}

// decodePayload returns a delivery's content type and its content as the
// webhook body carries it: the text of text content, the fallback text of
// other types; and whether it is another bridge's automatic reply
// (isAutoReply), from the same decoding.
func decodePayload(payload []byte) (contentType, text string, auto bool, err error) {
	c, err := content.Decode(payload)
	if err != nil {
		return "", "", false, fmt.Errorf("decode payload: %w", err)
	}
	auto = c.Parameters[autoReplyParameter] != ""
	if c.IsText() {
		t, err := c.Text()
		if err != nil {
			return "", "", false, fmt.Errorf("decode payload: %w", err)
		}
		return c.Type.String(), t, auto, nil
	}
	return c.Type.String(), c.Fallback, auto, nil
}
