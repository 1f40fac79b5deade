package main

import (
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/xmtpbridge/bridge/internal/apiclient"
	"github.com/xmtpbridge/bridge/system/config"
)

// adminFlags are the flags of the operator commands, which use the admin
// token instead of an API key.
type adminFlags struct {
	clientFlags
	tokenStdin bool
}

func (f *adminFlags) add(c *cobra.Command) {
	c.Flags().StringVar(&f.api, "api", "", "base URL of any node's API (default $"+envAPIURL+", then http://$BRIDGE_HTTP_ADDR)")
	c.Flags().BoolVar(&f.json, "json", false, "print JSON for scripts")
	c.Flags().BoolVar(&f.tokenStdin, "admin-token-stdin", false, "read the admin token from stdin instead of BRIDGE_ADMIN_TOKEN")
}

// adminCommand gives c the admin flags and runs f with a session that
// sends the admin token.
func adminCommand(inv *invocation, c *cobra.Command, f func(*session, *cobra.Command, []string) error) *cobra.Command {
	var flags adminFlags
	flags.add(c)
	c.RunE = func(cmd *cobra.Command, args []string) error {
		api := strings.TrimSpace(flags.api)
		if api == "" {
			api = strings.TrimSpace(inv.env(envAPIURL))
		}
		if api == "" {
			api = localAPI(inv)
		}
		if err := apiclient.CheckBaseURL(api); err != nil {
			return usagef("%v", err)
		}
		token := strings.TrimSpace(inv.env(config.EnvAdminToken))
		if flags.tokenStdin {
			t, err := readSecret(inv, "Admin token: ")
			if err != nil {
				return failf(inv, cmd, "%v", err)
			}
			token = t
		}
		if token == "" {
			return usagef("the admin token is required: set %s or pass --admin-token-stdin", config.EnvAdminToken)
		}
		s := &session{inv: inv, cmd: cmd.CommandPath(), out: newPrinter(inv, flags.json),
			cl: &apiclient.Client{BaseURL: strings.TrimRight(api, "/"), Token: token, UserAgent: userAgent()}}
		return f(s, cmd, args)
	}
	return c
}

// adminCommands is `bridge admin members|placement|drain`.
func adminCommands(inv *invocation) []*cobra.Command {
	members := adminCommand(inv, &cobra.Command{
		Use:   "members",
		Short: "List the members of the cluster and how many identities each hosts",
		Args:  cobra.NoArgs,
	}, func(s *session, c *cobra.Command, _ []string) error {
		ctx, cancel := timeoutContext(c)
		defer cancel()
		m, err := s.cl.ClusterMembers(ctx)
		if err != nil {
			return s.fail(err)
		}
		if s.out.json {
			m.Members = nonNil(m.Members)
			return s.out.JSON(m)
		}
		s.out.Line("cluster provider %s, answered by node %s", m.Provider, m.Self)
		t := s.out.Table(3, "NODE", "MEMBER", "ADDRESS", "STATE", "HOSTED", "SELF")
		for _, mb := range m.Members {
			state := "live"
			if mb.Draining {
				state = "draining"
			}
			self := ""
			if mb.Self {
				self = "yes"
			}
			t.Row(mb.Node, mb.ID, mb.Address, state, strconv.Itoa(mb.Hosted), self)
		}
		t.Flush()
		return nil
	})
	var node string
	placement := adminCommand(inv, &cobra.Command{
		Use:   "placement [--node NODE]",
		Short: "List every identity with a live lease and the node hosting it",
		Args:  cobra.NoArgs,
	}, func(s *session, c *cobra.Command, _ []string) error {
		ctx, cancel := timeoutContext(c)
		defer cancel()
		ps, err := s.cl.Placement(ctx, node)
		if err != nil {
			return s.fail(err)
		}
		if s.out.json {
			return s.out.JSON(nonNil(ps))
		}
		t := s.out.Table(-1, "BRIDGE", "ADDRESS", "NODE", "EPOCH", "LEASE EXPIRES")
		for _, p := range ps {
			t.Row(p.BridgeID, p.Address, p.Node, strconv.FormatInt(p.Epoch, 10), p.ExpiresAt)
		}
		t.Flush()
		return nil
	})
	placement.Flags().StringVar(&node, "node", "", "only the identities of this node")
	var timeout time.Duration
	drain := adminCommand(inv, &cobra.Command{
		Use:   "drain NODE",
		Short: "Move a node's identities to the other members and make it leave the cluster",
		Args:  cobra.ExactArgs(1),
	}, func(s *session, c *cobra.Command, args []string) error {
		if timeout <= 0 {
			return usagef("--timeout must be positive")
		}
		ctx, cancel := context.WithTimeout(c.Context(), timeout)
		defer cancel()
		s.cl.HTTP = noTimeoutHTTP()
		n, err := s.cl.Drain(ctx, args[0])
		if err != nil {
			return s.fail(err)
		}
		if s.out.json {
			return s.out.JSON(map[string]any{"node": args[0], "status": "drained", "identities": n})
		}
		s.out.Line("node %s drained: %d identities moved to the other members", args[0], n)
		return nil
	})
	drain.Flags().DurationVar(&timeout, "timeout", 2*time.Minute, "how long the drain may take")
	return []*cobra.Command{group("admin", "Operator commands with the admin token: members, placement, drain", members, placement, drain)}
}
