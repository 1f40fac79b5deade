package http

import (
	"strconv"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/xmtpbridge/bridge/persistence"
)

// sentMessageView is the status of a sent message in responses.
type sentMessageView struct {
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

func viewSentMessage(m persistence.SentMessage) sentMessageView {
	return sentMessageView{
		ID: strconv.FormatInt(m.ID, 10), MessageID: m.MessageID, Source: string(m.Source), To: m.To,
		Status: string(m.Status), Attempts: m.Attempts, LastError: m.LastError, CreatedAt: m.CreatedAt, UpdatedAt: m.UpdatedAt,
	}
}

// getSentMessage answers the status of one message one of the caller's
// bridges sent: queued, sent or failed, with its attempts and last error.
func (s *Server) getSentMessage(c *fiber.Ctx) error {
	m, err := s.opts.Store.SentMessage(c.UserContext(), account(c).ID, c.Params("id"), c.Params("messageId"))
	if err != nil {
		return storeError(err, "message")
	}
	return c.JSON(fiber.Map{"ok": true, "message": viewSentMessage(m)})
}

// listSentMessages lists, newest first, the messages one of the caller's
// bridges sent: over REST, through the reverse proxy, from live consumers
// and in broadcasts.
func (s *Server) listSentMessages(c *fiber.Ctx) error {
	p, err := page(c)
	if err != nil {
		return err
	}
	list, next, err := s.opts.Store.ListSentMessages(c.UserContext(), account(c).ID, c.Params("id"), p)
	if err != nil {
		return storeError(err, "bridge")
	}
	out := make([]sentMessageView, 0, len(list))
	for _, m := range list {
		out = append(out, viewSentMessage(m))
	}
	return c.JSON(fiber.Map{"ok": true, "messages": out, "nextCursor": next})
}
