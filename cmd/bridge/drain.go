package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/xmtpbridge/bridge/internal/apiclient"
	"github.com/xmtpbridge/bridge/system/config"
)

// drainCommands is `bridge drain`, which asks a node, through the admin
// API of any node, to move its identities to the other members and leave
// the cluster. It is what a Kubernetes preStop hook or an operator runs
// before stopping a node.
func drainCommands(inv *invocation) []*cobra.Command {
	var nodeID, api string
	var timeout time.Duration
	c := &cobra.Command{
		Use:   "drain [--node-id=ID] [--api=URL] [--timeout=2m]",
		Short: "Move a node's identities to the other members before it stops",
		Long: "Drains a node: it stops its identities, releases their leases and leaves the cluster,\n" +
			"so the other members take them over. The admin token comes from BRIDGE_ADMIN_TOKEN.\n" +
			"The node defaults to BRIDGE_NODE_ID, the API to http://BRIDGE_HTTP_ADDR.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if nodeID == "" {
				nodeID = strings.TrimSpace(inv.env(config.EnvNodeID))
			}
			if api == "" {
				api = localAPI(inv)
			}
			token := strings.TrimSpace(inv.env(config.EnvAdminToken))
			switch {
			case nodeID == "":
				return usagef("--node-id or BRIDGE_NODE_ID is required")
			case token == "":
				return usagef("BRIDGE_ADMIN_TOKEN is required")
			case apiclient.CheckBaseURL(api) != nil:
				return usagef("--api %q is not an http(s) URL", api)
			case timeout <= 0:
				return usagef("--timeout must be positive")
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			cl := &apiclient.Client{BaseURL: api, Token: token, HTTP: noTimeoutHTTP(), UserAgent: userAgent()}
			n, err := cl.Drain(ctx, nodeID)
			if err != nil {
				fmt.Fprintf(inv.stderr, "bridge drain: %s\n", describe(err))
				return exitWith(exitFailure)
			}
			fmt.Fprintf(inv.stdout, "node %s drained: %d identities moved to the other members\n", nodeID, n)
			return nil
		},
	}
	c.Flags().StringVar(&nodeID, "node-id", "", "node id to drain (default $BRIDGE_NODE_ID)")
	c.Flags().StringVar(&api, "api", "", "base URL of any node's API (default http://$BRIDGE_HTTP_ADDR)")
	c.Flags().DurationVar(&timeout, "timeout", 2*time.Minute, "how long the drain may take")
	return []*cobra.Command{c}
}

// localAPI is the API of the node configured in the environment:
// http://BRIDGE_HTTP_ADDR, with a wildcard host made loopback.
func localAPI(inv *invocation) string {
	addr := strings.TrimSpace(inv.env(config.EnvHTTPAddr))
	if addr == "" {
		addr = "127.0.0.1:8080"
	}
	return "http://" + strings.Replace(addr, "0.0.0.0:", "127.0.0.1:", 1)
}
