package main

import (
	"github.com/spf13/cobra"
)

// sendCommands is `bridge send`. Waiting for the message's status
// (--wait) comes with the API that reports it.
func sendCommands(inv *invocation) []*cobra.Command {
	return []*cobra.Command{clientCommand(inv, &cobra.Command{
		Use:     "send BRIDGE TO TEXT",
		Short:   "Send a text message over XMTP as a bridge",
		Example: "  bridge send echo 0x1234…abcd 'hi from the bridge'",
		Args:    cobra.ExactArgs(3),
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
		if s.out.json {
			return s.out.JSON(map[string]any{"bridgeId": id, "to": args[1], "messageId": msgID})
		}
		s.out.Line("message %s accepted: bridge %s sends it to %s", msgID, args[0], args[1])
		return nil
	})}
}
