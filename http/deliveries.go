package http

import (
	"encoding/base64"
	"strconv"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/xmtpbridge/bridge/persistence"
	"github.com/xmtpbridge/bridge/xmtp/content"
)

// deliveryView is a delivery in owner responses: the message as text when
// it is text, the reply the endpoint gave, and each attempt. The payload
// (the encoded XMTP content, base64) stays for content that is not text.
type deliveryView struct {
	ID            string        `json:"id"`
	MessageID     string        `json:"messageId"`
	Topic         string        `json:"topic"`
	SenderAddress string        `json:"senderAddress"`
	SentNs        string        `json:"sentNs"`
	ContentType   string        `json:"contentType"`
	Text          *string       `json:"text"`
	Payload       string        `json:"payload"`
	Reply         *string       `json:"reply"`
	Status        string        `json:"status"`
	Attempts      int           `json:"attempts"`
	AttemptLog    []attemptView `json:"attemptLog"`
	NextAttemptAt *time.Time    `json:"nextAttemptAt"`
	LastError     string        `json:"lastError"`
	CreatedAt     time.Time     `json:"createdAt"`
	UpdatedAt     time.Time     `json:"updatedAt"`
	PurgedAt      *time.Time    `json:"purgedAt"`
}

// attemptView is one HTTP attempt of a delivery.
type attemptView struct {
	At        time.Time `json:"at"`
	Status    *int      `json:"status"`
	LatencyMs float64   `json:"latencyMs"`
	Error     string    `json:"error"`
}

// viewDelivery renders d with its attempts. nextAttemptAt is null once the
// delivery is final (succeeded or dead).
func viewDelivery(d persistence.Delivery, attempts []persistence.AttemptRecord) deliveryView {
	v := deliveryView{
		ID: strconv.FormatInt(d.ID, 10), MessageID: d.MessageID, Topic: d.Topic, SenderAddress: d.SenderAddress,
		SentNs: strconv.FormatInt(d.SentNs, 10), Payload: base64.StdEncoding.EncodeToString(d.Payload),
		Status: string(d.Status), Attempts: d.Attempts, LastError: d.LastError,
		CreatedAt: d.CreatedAt, UpdatedAt: d.UpdatedAt, PurgedAt: d.PurgedAt, AttemptLog: []attemptView{},
	}
	if d.Status == persistence.DeliveryPending || d.Status == persistence.DeliveryFailed {
		next := d.NextAttemptAt
		v.NextAttemptAt = &next
	}
	if len(d.Payload) > 0 {
		if ec, err := content.Decode(d.Payload); err == nil {
			v.ContentType = ec.Type.String()
			if ec.IsText() {
				if text, err := ec.Text(); err == nil {
					v.Text = &text
				}
			}
		}
	}
	if d.HasReply {
		reply := d.Reply
		v.Reply = &reply
	}
	for _, a := range attempts {
		av := attemptView{At: a.At, LatencyMs: float64(a.Latency.Microseconds()) / 1000, Error: a.Error}
		if a.StatusCode != 0 {
			code := a.StatusCode
			av.Status = &code
		}
		v.AttemptLog = append(v.AttemptLog, av)
	}
	return v
}

// viewDeliveries renders ds with their attempts, loaded in one query.
func (s *Server) viewDeliveries(c *fiber.Ctx, ds []persistence.Delivery) ([]deliveryView, error) {
	ids := make([]int64, len(ds))
	for i, d := range ds {
		ids[i] = d.ID
	}
	attempts, err := s.opts.Store.AttemptsOf(c.UserContext(), ids)
	if err != nil {
		return nil, err
	}
	out := make([]deliveryView, 0, len(ds))
	for _, d := range ds {
		out = append(out, viewDelivery(d, attempts[d.ID]))
	}
	return out, nil
}

// getDelivery shows one delivery of one of the caller's bridges.
func (s *Server) getDelivery(c *fiber.Ctx) error {
	id, err := strconv.ParseInt(c.Params("deliveryId"), 10, 64)
	if err != nil || id <= 0 {
		return notFound("delivery")
	}
	d, err := s.opts.Store.GetDelivery(c.UserContext(), account(c).ID, c.Params("id"), id)
	if err != nil {
		return storeError(err, "delivery")
	}
	views, err := s.viewDeliveries(c, []persistence.Delivery{d})
	if err != nil {
		return storeError(err, "delivery")
	}
	return c.JSON(fiber.Map{"ok": true, "delivery": views[0]})
}
