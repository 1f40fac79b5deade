package actors

import (
	"context"
	"testing"
	"time"

	"github.com/xmtpbridge/bridge/actors/webhook/webhooktest"
	"github.com/xmtpbridge/bridge/internal/testkit"
	"github.com/xmtpbridge/bridge/persistence"
	"github.com/xmtpbridge/bridge/xmtp/content"
)

// Every message a bridge sends for its owner, over REST or as a command of
// the API identity, has a status its owner can read back.
func TestSendsRecordTheirStatus(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tg := webhooktest.NewTarget(t, persistence.FormatJSON)
	b, _ := e.bridge(tg.URL, persistence.FormatJSON, nil)
	apiID := e.sender()
	recipient := e.sender()
	rt, _ := e.runtime("n1", func(c *Config) { c.APIAddress = apiID.Address() })
	ctx := context.Background()

	id, err := rt.Send(ctx, b.ID, recipient.Address(), content.Text("over rest"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := e.store.SentMessage(ctx, e.account.ID, b.ID, id)
	if err != nil || m.Status != persistence.SendSent || m.Source != persistence.SendREST || m.Attempts != 1 || m.To != recipient.Address() {
		t.Fatalf("rest send status: %+v %v", m, err)
	}

	cmd := `{"targetAddress":"` + recipient.Address() + `","message":"from the api"}`
	if _, err := apiID.SendText(ctx, b.Address, cmd); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 30*time.Second, func() bool {
		list, _, err := e.store.ListSentMessages(ctx, e.account.ID, b.ID, persistence.Page{})
		return err == nil && len(list) == 2 && list[0].Source == persistence.SendReverse && list[0].Status == persistence.SendSent
	}, "reverse send recorded")
}
