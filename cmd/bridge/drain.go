package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/xmtpbridge/bridge/system/config"
)

// runDrain asks a node, through the admin API of any node, to move its
// identities to the other members and leave the cluster. It is what a
// Kubernetes preStop hook or an operator runs before stopping a node.
func runDrain(ctx context.Context, inv *invocation) int {
	fs := flag.NewFlagSet("bridge drain", flag.ContinueOnError)
	fs.SetOutput(inv.stderr)
	nodeID := fs.String("node-id", "", "node id to drain (default $BRIDGE_NODE_ID)")
	api := fs.String("api", "", "base URL of any node's API (default http://$BRIDGE_HTTP_ADDR)")
	timeout := fs.Duration("timeout", 2*time.Minute, "how long the drain may take")
	fs.Usage = func() {
		fmt.Fprintln(inv.stderr, "Usage: bridge drain [--node-id=ID] [--api=URL] [--timeout=2m]")
		fmt.Fprintln(inv.stderr)
		fmt.Fprintln(inv.stderr, "Drains a node: it stops its identities, releases their leases and leaves the cluster,")
		fmt.Fprintln(inv.stderr, "so the other members take them over. The admin token comes from BRIDGE_ADMIN_TOKEN.")
		fmt.Fprintln(inv.stderr)
		fs.PrintDefaults()
	}
	if err := fs.Parse(inv.args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	env := func(name string) string {
		v, _ := inv.lookup(name)
		return strings.TrimSpace(v)
	}
	if *nodeID == "" {
		*nodeID = env(config.EnvNodeID)
	}
	if *api == "" {
		addr := env(config.EnvHTTPAddr)
		if addr == "" {
			addr = "127.0.0.1:8080"
		}
		*api = "http://" + strings.Replace(addr, "0.0.0.0:", "127.0.0.1:", 1)
	}
	token := env(config.EnvAdminToken)
	switch {
	case fs.NArg() > 0:
		fmt.Fprintf(inv.stderr, "bridge drain: unexpected arguments %q\n", fs.Args())
		return exitUsage
	case *nodeID == "":
		fmt.Fprintln(inv.stderr, "bridge drain: --node-id or BRIDGE_NODE_ID is required")
		return exitUsage
	case token == "":
		fmt.Fprintln(inv.stderr, "bridge drain: BRIDGE_ADMIN_TOKEN is required")
		return exitUsage
	}
	u, err := url.Parse(*api)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		fmt.Fprintf(inv.stderr, "bridge drain: --api %q is not an http(s) URL\n", *api)
		return exitUsage
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	endpoint := strings.TrimRight(*api, "/") + "/v1/admin/nodes/" + url.PathEscape(*nodeID) + "/drain"
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, nil)
	if err != nil {
		fmt.Fprintf(inv.stderr, "bridge drain: %v\n", err)
		return exitUsage
	}
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		fmt.Fprintf(inv.stderr, "bridge drain: %v\n", err)
		return exitFailure
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(res.Body, 1<<16))
	var out struct {
		Identities int    `json:"identities"`
		Error      string `json:"error"`
	}
	_ = json.Unmarshal(body, &out)
	if res.StatusCode != http.StatusOK {
		msg := out.Error
		if msg == "" {
			msg = strings.TrimSpace(string(body))
		}
		fmt.Fprintf(inv.stderr, "bridge drain: %s answered %d: %s\n", endpoint, res.StatusCode, msg)
		return exitFailure
	}
	fmt.Fprintf(inv.stdout, "node %s drained: %d identities moved to the other members\n", *nodeID, out.Identities)
	return exitOK
}
