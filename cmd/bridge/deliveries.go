package main

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/xmtpbridge/bridge/internal/apiclient"
)

// deliveryCommands are `bridge deliveries` and `bridge replay`.
func deliveryCommands(inv *invocation) []*cobra.Command {
	return []*cobra.Command{deliveriesList(inv), replay(inv)}
}

// deliveryText is a delivery's text for people: the decoded text, or
// what stands in for it.
func deliveryText(d apiclient.Delivery) string {
	switch {
	case d.Text != nil:
		return *d.Text
	case d.PurgedAt != nil:
		return "(content purged " + when(*d.PurgedAt) + ")"
	case d.ContentType != "":
		return "(" + d.ContentType + ")"
	}
	return "(not text)"
}

// attemptLine is one attempt for people: status code, latency, error.
func attemptCells(a apiclient.Attempt) []string {
	status := "no answer"
	if a.Status != nil {
		status = strconv.Itoa(*a.Status)
	}
	latency := (time.Duration(a.LatencyMs * float64(time.Millisecond))).Round(time.Millisecond).String()
	return []string{when(a.At), status, latency, clip(a.Error, 80)}
}

var deliveryStatuses = []string{"pending", "succeeded", "failed", "dead"}

func deliveriesList(inv *invocation) *cobra.Command {
	var status string
	var limit int
	c := clientCommand(inv, &cobra.Command{
		Use:   "deliveries BRIDGE [ID] [--status pending|succeeded|failed|dead]",
		Short: "List a bridge's deliveries, newest first, or show one with its attempt history",
		Long: "Without ID, lists a bridge's deliveries, newest first, with their text, attempts and last error.\n" +
			"With ID, shows one delivery: its text, the endpoint's reply and every attempt (time, HTTP status,\n" +
			"latency, error). --json prints the API's delivery objects as they are.",
		Example: "  bridge deliveries echo --status dead\n  bridge deliveries echo 42",
		Args: func(c *cobra.Command, args []string) error {
			if status != "" && !contains(deliveryStatuses, status) {
				return usagef("--status %q is not one of %s", status, strings.Join(deliveryStatuses, ", "))
			}
			if err := cobra.RangeArgs(1, 2)(c, args); err != nil {
				return err
			}
			if len(args) == 2 && (status != "" || c.Flags().Changed("limit")) {
				return usagef("--status and --limit list deliveries; they do not go with a delivery id")
			}
			return nil
		},
	}, func(s *session, c *cobra.Command, args []string) error {
		ctx, cancel := timeoutContext(c)
		defer cancel()
		id, err := s.resolveBridge(ctx, args[0])
		if err != nil {
			return s.fail(err)
		}
		if len(args) == 2 {
			d, err := s.cl.Delivery(ctx, id, args[1])
			if err != nil {
				return s.fail(err)
			}
			if s.out.json {
				return s.out.JSON(d)
			}
			showDelivery(s.out, d)
			return nil
		}
		list, next, err := s.cl.Deliveries(ctx, id, status, "", limit)
		if err != nil {
			return s.fail(err)
		}
		if s.out.json {
			return s.out.JSON(nonNil(list))
		}
		t := s.out.Table(3, "ID", "RECEIVED", "FROM", "STATUS", "ATTEMPTS", "TEXT", "LAST ERROR")
		for _, d := range list {
			t.Row(d.ID, when(d.CreatedAt), d.SenderAddress, d.Status, strconv.Itoa(d.Attempts), clip(deliveryText(d), 40), clip(d.LastError, 60))
		}
		t.Flush()
		if next != "" {
			s.out.Line("(the newest %d; --limit shows more)", len(list))
		}
		return nil
	})
	c.Flags().StringVar(&status, "status", "", "only deliveries of this status: pending, succeeded, failed or dead")
	c.Flags().IntVar(&limit, "limit", 0, "how many to show, 1 to the API's maximum (default the API's page size)")
	_ = c.RegisterFlagCompletionFunc("status", cobra.FixedCompletions(deliveryStatuses, cobra.ShellCompDirectiveNoFileComp))
	return c
}

// showDelivery prints one delivery and its attempt history.
func showDelivery(p *printer, d apiclient.Delivery) {
	reply := ""
	if d.Reply != nil {
		reply = *d.Reply
	}
	next := "none (final)"
	if d.NextAttemptAt != nil {
		next = when(*d.NextAttemptAt)
	}
	p.Fields("id", d.ID, "message", d.MessageID, "from", d.SenderAddress, "received", when(d.CreatedAt),
		"content type", d.ContentType, "text", deliveryText(d), "reply", reply, "status", d.Status,
		"attempts", strconv.Itoa(d.Attempts), "next attempt", next, "last error", d.LastError,
		"purged", whenPtr(d.PurgedAt))
	if len(d.AttemptLog) == 0 {
		p.Line("\nno attempts yet")
		return
	}
	p.Line("")
	t := p.Table(-1, "ATTEMPT", "AT", "STATUS", "LATENCY", "ERROR")
	for i, a := range d.AttemptLog {
		t.Row(append([]string{strconv.Itoa(i + 1)}, attemptCells(a)...)...)
	}
	t.Flush()
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func replay(inv *invocation) *cobra.Command {
	var allDead bool
	c := clientCommand(inv, &cobra.Command{
		Use:   "replay BRIDGE [DELIVERY | --all-dead]",
		Short: "Put a dead letter, or every dead letter of a bridge, back in the delivery queue",
		Args: func(c *cobra.Command, args []string) error {
			if err := cobra.RangeArgs(1, 2)(c, args); err != nil {
				return err
			}
			if allDead == (len(args) == 2) {
				return usagef("give either a delivery id or --all-dead")
			}
			return nil
		},
	}, func(s *session, c *cobra.Command, args []string) error {
		ctx, cancel := timeoutContext(c)
		defer cancel()
		id, err := s.resolveBridge(ctx, args[0])
		if err != nil {
			return s.fail(err)
		}
		if !allDead {
			d, err := s.cl.Replay(ctx, id, args[1])
			if err != nil {
				return s.fail(err)
			}
			if s.out.json {
				return s.out.JSON(d)
			}
			s.out.Line("delivery %s is queued again (status %s)", d.ID, s.out.paint(d.Status, statusColour(d.Status)))
			return nil
		}
		dead, err := s.cl.DeadLetters(ctx, id)
		if err != nil {
			return s.fail(err)
		}
		bar := s.out.Progress("replaying", len(dead))
		if s.out.json {
			bar.total = 0
		}
		var replayed []string
		var failures []string
		for i, d := range dead {
			if _, err := s.cl.Replay(ctx, id, d.ID); err != nil {
				failures = append(failures, fmt.Sprintf("delivery %s: %s", d.ID, describe(err)))
			} else {
				replayed = append(replayed, d.ID)
			}
			bar.Set(i + 1)
		}
		bar.Done()
		for _, f := range failures {
			fmt.Fprintf(s.inv.stderr, "%s: %s\n", s.cmd, f)
		}
		if s.out.json {
			if err := s.out.JSON(map[string]any{"bridgeId": id, "replayed": nonNil(replayed), "failed": len(failures)}); err != nil {
				return err
			}
		} else {
			s.out.Line("replayed %d of %d dead letters", len(replayed), len(dead))
		}
		if len(failures) > 0 {
			return exitWith(exitFailure)
		}
		return nil
	})
	c.Flags().BoolVar(&allDead, "all-dead", false, "replay every dead letter of the bridge")
	return c
}
