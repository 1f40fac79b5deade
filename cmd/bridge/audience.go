package main

import (
	"context"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/xmtpbridge/bridge/internal/apiclient"
)

// audienceCommands are `bridge subscribers` and `bridge broadcast`: the
// XMTP users who sent a bridge /subscribe, and the messages sent to all of
// them.
func audienceCommands(inv *invocation) []*cobra.Command {
	return []*cobra.Command{subscribersCommand(inv), broadcastCommand(inv)}
}

func subscribersCommand(inv *invocation) *cobra.Command {
	c := clientCommand(inv, &cobra.Command{
		Use:   "subscribers BRIDGE",
		Short: "List the subscribers of a bridge (XMTP users who sent it /subscribe)",
		Long: "Lists the addresses subscribed to a bridge's broadcasts. An XMTP user subscribes by sending the\n" +
			"bridge /subscribe and leaves with /unsubscribe; `bridge subscribers remove` removes one.",
		Args: cobra.ExactArgs(1),
	}, func(s *session, c *cobra.Command, args []string) error {
		ctx, cancel := timeoutContext(c)
		defer cancel()
		id, err := s.resolveBridge(ctx, args[0])
		if err != nil {
			return s.fail(err)
		}
		subs, err := s.cl.Subscribers(ctx, id)
		if err != nil {
			return s.fail(err)
		}
		if s.out.json {
			return s.out.JSON(nonNil(subs))
		}
		t := s.out.Table(-1, "ADDRESS", "SUBSCRIBED")
		for _, x := range subs {
			t.Row(x.Address, when(x.CreatedAt))
		}
		t.Flush()
		return nil
	})
	c.AddCommand(clientCommand(inv, &cobra.Command{
		Use:   "remove BRIDGE ADDRESS",
		Short: "Remove a subscriber of a bridge",
		Args:  cobra.ExactArgs(2),
	}, func(s *session, c *cobra.Command, args []string) error {
		ctx, cancel := timeoutContext(c)
		defer cancel()
		id, err := s.resolveBridge(ctx, args[0])
		if err != nil {
			return s.fail(err)
		}
		if err := s.cl.RemoveSubscriber(ctx, id, args[1]); err != nil {
			return s.fail(err)
		}
		if s.out.json {
			return s.out.JSON(map[string]any{"bridgeId": id, "address": args[1], "removed": true})
		}
		s.out.Line("%s no longer subscribes to %s", args[1], args[0])
		return nil
	}))
	return c
}

func broadcastCommand(inv *invocation) *cobra.Command {
	var wait bool
	var waitFor time.Duration
	c := clientCommand(inv, &cobra.Command{
		Use:   "broadcast BRIDGE TEXT [--wait]",
		Short: "Send TEXT from a bridge to every current subscriber; --wait follows it to the end",
		Long: "Queues one copy of TEXT for every subscriber of the bridge at this moment; the bridge sends them\n" +
			"at the node's broadcast rate. --wait polls the broadcast until no copy is pending, with a progress\n" +
			"bar on a terminal, then prints the counts and the failures; it exits 1 if a copy failed.",
		Args: func(c *cobra.Command, args []string) error {
			if waitFor <= 0 {
				return usagef("--wait-timeout must be above 0")
			}
			return cobra.ExactArgs(2)(c, args)
		},
	}, func(s *session, c *cobra.Command, args []string) error {
		ctx, cancel := context.WithTimeout(c.Context(), waitFor+time.Minute)
		defer cancel()
		id, err := s.resolveBridge(ctx, args[0])
		if err != nil {
			return s.fail(err)
		}
		bid, recipients, err := s.cl.Broadcast(ctx, id, args[1])
		if err != nil {
			return s.fail(err)
		}
		if !wait {
			if s.out.json {
				return s.out.JSON(map[string]any{"bridgeId": id, "id": bid, "recipients": recipients})
			}
			s.out.Line("broadcast %s queued for %d subscribers; `bridge broadcast --wait` follows one to the end", bid, recipients)
			return nil
		}
		st, err := waitBroadcast(ctx, s, id, bid, recipients, waitFor)
		if err != nil {
			return s.fail(err)
		}
		if s.out.json {
			if err := s.out.JSON(st); err != nil {
				return err
			}
		} else {
			s.out.Fields("broadcast", st.ID, "recipients", strconv.Itoa(st.Recipients), "sent", strconv.Itoa(st.Sent),
				"failed", strconv.Itoa(st.Failed), "pending", strconv.Itoa(st.Pending))
			if len(st.Failures) > 0 {
				t := s.out.Table(-1, "ADDRESS", "REASON")
				for _, f := range st.Failures {
					t.Row(f.Address, clip(f.Reason, 80))
				}
				t.Flush()
			}
		}
		if st.Failed > 0 || st.Pending > 0 {
			return exitWith(exitFailure)
		}
		return nil
	})
	c.Flags().BoolVar(&wait, "wait", false, "wait until every copy is sent or failed, with a progress bar on a terminal")
	c.Flags().DurationVar(&waitFor, "wait-timeout", 10*time.Minute, "how long --wait waits")
	return c
}

// waitBroadcast polls a broadcast until nothing is pending or timeout,
// drawing the progress bar.
func waitBroadcast(ctx context.Context, s *session, id, bid string, recipients int, timeout time.Duration) (apiclient.Broadcast, error) {
	bar := s.out.Progress("broadcasting", recipients)
	if s.out.json {
		bar.total = 0
	}
	defer bar.Done()
	deadline := time.Now().Add(timeout)
	for {
		st, err := s.cl.BroadcastStatus(ctx, id, bid)
		if err != nil {
			return st, err
		}
		bar.Set(st.Sent + st.Failed)
		if st.Pending == 0 || time.Now().After(deadline) {
			return st, nil
		}
		select {
		case <-ctx.Done():
			return st, ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}
