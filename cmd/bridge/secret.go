package main

import (
	"time"

	"github.com/spf13/cobra"
)

// secretCommands is `bridge secret rotate`.
func secretCommands(inv *invocation) []*cobra.Command {
	var grace time.Duration
	rotate := clientCommand(inv, &cobra.Command{
		Use:   "rotate BRIDGE [--grace 24h]",
		Short: "Issue a new webhook secret for a bridge; the old one stays valid for the grace period",
		Args:  cobra.ExactArgs(1),
	}, func(s *session, c *cobra.Command, args []string) error {
		var graceSeconds *int64
		if c.Flags().Changed("grace") {
			if grace < 0 {
				return usagef("--grace must not be negative")
			}
			g := int64(grace / time.Second)
			graceSeconds = &g
		}
		ctx, cancel := timeoutContext(c)
		defer cancel()
		id, err := s.resolveBridge(ctx, args[0])
		if err != nil {
			return s.fail(err)
		}
		secret, validFor, err := s.cl.RotateWebhookSecret(ctx, id, graceSeconds)
		if err != nil {
			return s.fail(err)
		}
		if s.out.json {
			return s.out.JSON(map[string]any{"bridgeId": id, "webhookSecret": secret, "previousSecretValidFor": validFor})
		}
		s.out.Fields("bridge", id, "webhook secret", secret,
			"previous secret", "valid for "+(time.Duration(validFor)*time.Second).String())
		s.out.Line("The new webhook secret is shown this once.")
		return nil
	})
	rotate.Flags().DurationVar(&grace, "grace", 0, "how long the old secret stays valid (default: the node's)")
	return []*cobra.Command{group("secret", "Manage a bridge's webhook secret", rotate)}
}
