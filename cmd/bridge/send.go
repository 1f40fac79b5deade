package main

import (
	"context"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/xmtpbridge/bridge/internal/apiclient"
)

// sendCommands are `bridge send` and `bridge messages`.
func sendCommands(inv *invocation) []*cobra.Command {
	var wait bool
	var waitFor time.Duration
	send := clientCommand(inv, &cobra.Command{
		Use:   "send BRIDGE TO TEXT [--wait]",
		Short: "Send a text message over XMTP as a bridge; --wait waits until it is sent",
		Long: "Sends TEXT from the bridge to the XMTP address TO. The API queues it; with --wait the command\n" +
			"waits until the message is sent or has failed, prints that status and exits 1 if it failed.",
		Example: "  bridge send echo 0x1234…abcd 'hi from the bridge' --wait",
		Args: func(c *cobra.Command, args []string) error {
			if waitFor <= 0 {
				return usagef("--wait-timeout must be above 0")
			}
			return cobra.ExactArgs(3)(c, args)
		},
	}, func(s *session, c *cobra.Command, args []string) error {
		ctx, cancel := timeoutContext(c)
		defer cancel()
		id, err := s.resolveBridge(ctx, args[0])
		if err != nil {
			return s.fail(err)
		}
		msgID, err := s.cl.Send(ctx, id, args[1], args[2])
		if err != nil {
			return s.fail(err)
		}
		if !wait {
			if s.out.json {
				return s.out.JSON(map[string]any{"bridgeId": id, "to": args[1], "messageId": msgID})
			}
			s.out.Line("message %s accepted: bridge %s sends it to %s", msgID, args[0], args[1])
			return nil
		}
		m, err := waitSent(ctx, s.cl, id, msgID, waitFor)
		if err != nil {
			return s.fail(err)
		}
		if s.out.json {
			if err := s.out.JSON(m); err != nil {
				return err
			}
		} else {
			s.out.Fields("message", m.MessageID, "to", m.To, "status", m.Status, "attempts", strconv.Itoa(m.Attempts), "last error", m.LastError)
		}
		if m.Status != "sent" {
			return exitWith(exitFailure)
		}
		return nil
	})
	send.Flags().BoolVar(&wait, "wait", false, "wait until the message is sent (or has failed) and print its status")
	send.Flags().DurationVar(&waitFor, "wait-timeout", time.Minute, "how long --wait waits")
	return []*cobra.Command{send, messagesCommand(inv)}
}

// waitSent polls a sent message's status until it is sent or failed, or
// until timeout; then it returns the status as it stands.
func waitSent(ctx context.Context, cl *apiclient.Client, bridgeID, msgID string, timeout time.Duration) (apiclient.SentMessage, error) {
	deadline := time.Now().Add(timeout)
	delay := 100 * time.Millisecond
	for {
		m, err := cl.SentMessage(ctx, bridgeID, msgID)
		if err != nil {
			return m, err
		}
		if m.Status == "sent" || m.Status == "failed" || time.Now().After(deadline) {
			return m, nil
		}
		select {
		case <-ctx.Done():
			return m, ctx.Err()
		case <-time.After(delay):
		}
		if delay < time.Second {
			delay *= 2
		}
	}
}

func messagesCommand(inv *invocation) *cobra.Command {
	var limit int
	c := clientCommand(inv, &cobra.Command{
		Use:   "messages BRIDGE [ID]",
		Short: "List the messages a bridge sent, newest first, or show one's status",
		Long: "Lists what a bridge sent (over the API, as replies, from live consumers and in broadcasts) with\n" +
			"each message's status: queued, sent or failed. With ID (a message id), shows that one.",
		Args: cobra.RangeArgs(1, 2),
	}, func(s *session, c *cobra.Command, args []string) error {
		ctx, cancel := timeoutContext(c)
		defer cancel()
		id, err := s.resolveBridge(ctx, args[0])
		if err != nil {
			return s.fail(err)
		}
		if len(args) == 2 {
			m, err := s.cl.SentMessage(ctx, id, args[1])
			if err != nil {
				return s.fail(err)
			}
			if s.out.json {
				return s.out.JSON(m)
			}
			s.out.Fields("message", m.MessageID, "to", m.To, "source", m.Source, "status", m.Status,
				"attempts", strconv.Itoa(m.Attempts), "last error", m.LastError, "created", when(m.CreatedAt), "updated", when(m.UpdatedAt))
			return nil
		}
		list, next, err := s.cl.SentMessages(ctx, id, "", limit)
		if err != nil {
			return s.fail(err)
		}
		if s.out.json {
			return s.out.JSON(nonNil(list))
		}
		t := s.out.Table(4, "MESSAGE", "CREATED", "TO", "SOURCE", "STATUS", "ATTEMPTS", "LAST ERROR")
		for _, m := range list {
			t.Row(m.MessageID, when(m.CreatedAt), m.To, m.Source, m.Status, strconv.Itoa(m.Attempts), clip(m.LastError, 60))
		}
		t.Flush()
		if next != "" {
			s.out.Line("(the newest %d; --limit shows more)", len(list))
		}
		return nil
	})
	c.Flags().IntVar(&limit, "limit", 0, "how many to show, 1 to the API's maximum (default the API's page size)")
	return c
}
