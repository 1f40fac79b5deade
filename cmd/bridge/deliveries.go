package main

import (
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/xmtpbridge/bridge/internal/apiclient"
	"github.com/xmtpbridge/bridge/xmtp/content"
)

// deliveryCommands are `bridge deliveries` and `bridge replay`.
func deliveryCommands(inv *invocation) []*cobra.Command {
	return []*cobra.Command{deliveriesList(inv), replay(inv)}
}

// deliveryView is a delivery with its content decoded, as --json prints it.
type deliveryView struct {
	apiclient.Delivery
	ContentType string `json:"contentType,omitempty"`
	Text        string `json:"text"`
}

// decodeDelivery decodes a delivery's payload, the encoded XMTP content:
// the text of text content, the fallback of other types.
func decodeDelivery(d apiclient.Delivery) deliveryView {
	v := deliveryView{Delivery: d}
	raw, err := base64.StdEncoding.DecodeString(d.Payload)
	if err != nil {
		v.Text = "(payload is not base64)"
		return v
	}
	c, err := content.Decode(raw)
	if err != nil {
		v.Text = "(content does not decode)"
		return v
	}
	v.ContentType = c.Type.String()
	if c.IsText() {
		if t, err := c.Text(); err == nil {
			v.Text = t
			return v
		}
	}
	v.Text = c.Fallback
	return v
}

var deliveryStatuses = []string{"pending", "succeeded", "failed", "dead"}

func deliveriesList(inv *invocation) *cobra.Command {
	var status string
	var limit int
	c := clientCommand(inv, &cobra.Command{
		Use:   "deliveries BRIDGE [--status pending|succeeded|failed|dead]",
		Short: "List a bridge's deliveries, newest first, with their text, attempts and last error",
		Args: func(c *cobra.Command, args []string) error {
			if status != "" && !contains(deliveryStatuses, status) {
				return usagef("--status %q is not one of %s", status, strings.Join(deliveryStatuses, ", "))
			}
			return cobra.ExactArgs(1)(c, args)
		},
	}, func(s *session, c *cobra.Command, args []string) error {
		ctx, cancel := timeoutContext(c)
		defer cancel()
		id, err := s.resolveBridge(ctx, args[0])
		if err != nil {
			return s.fail(err)
		}
		list, next, err := s.cl.Deliveries(ctx, id, status, "", limit)
		if err != nil {
			return s.fail(err)
		}
		views := make([]deliveryView, 0, len(list))
		for _, d := range list {
			views = append(views, decodeDelivery(d))
		}
		if s.out.json {
			return s.out.JSON(views)
		}
		t := s.out.Table(3, "ID", "RECEIVED", "FROM", "STATUS", "ATTEMPTS", "TEXT", "LAST ERROR")
		for _, v := range views {
			t.Row(v.ID, when(v.CreatedAt), v.SenderAddress, v.Status, strconv.Itoa(v.Attempts), clip(v.Text, 40), clip(v.LastError, 60))
		}
		t.Flush()
		if next != "" {
			s.out.Line("(the newest %d; --limit shows more)", len(views))
		}
		return nil
	})
	c.Flags().StringVar(&status, "status", "", "only deliveries of this status: pending, succeeded, failed or dead")
	c.Flags().IntVar(&limit, "limit", 0, "how many to show, 1 to the API's maximum (default the API's page size)")
	_ = c.RegisterFlagCompletionFunc("status", cobra.FixedCompletions(deliveryStatuses, cobra.ShellCompDirectiveNoFileComp))
	return c
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
				return s.out.JSON(decodeDelivery(d))
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
