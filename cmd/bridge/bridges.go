package main

import (
	"context"
	"fmt"
	"regexp"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/xmtpbridge/bridge/internal/apiclient"
)

// bridgeCommands is `bridge bridges list|create|get|update|delete`.
func bridgeCommands(inv *invocation) []*cobra.Command {
	return []*cobra.Command{group("bridges", "List, create, show, change and delete bridges",
		bridgesList(inv), bridgesCreate(inv), bridgesGet(inv), bridgesUpdate(inv), bridgesDelete(inv))}
}

// uuidPattern matches a bridge id.
var uuidPattern = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

// resolveBridge returns the id of the bridge ref names: an id as it is, or
// the one bridge whose name or address is ref.
func (s *session) resolveBridge(ctx context.Context, ref string) (string, error) {
	if uuidPattern.MatchString(ref) {
		return ref, nil
	}
	bridges, err := s.cl.Bridges(ctx)
	if err != nil {
		return "", err
	}
	var found []apiclient.Bridge
	for _, b := range bridges {
		if b.Name == ref || (len(ref) == 42 && equalFold(b.Address, ref)) {
			found = append(found, b)
		}
	}
	switch len(found) {
	case 1:
		return found[0].ID, nil
	case 0:
		return "", fmt.Errorf("find bridge: no bridge has the id, name or address %q", ref)
	}
	return "", fmt.Errorf("find bridge: %d bridges are named %q; give the id", len(found), ref)
}

func equalFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i]|0x20, b[i]|0x20
		if x != y {
			return false
		}
	}
	return true
}

func bridgesList(inv *invocation) *cobra.Command {
	return clientCommand(inv, &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List your bridges",
		Args:    cobra.NoArgs,
	}, func(s *session, c *cobra.Command, _ []string) error {
		ctx, cancel := timeoutContext(c)
		defer cancel()
		bridges, err := s.cl.Bridges(ctx)
		if err != nil {
			return s.fail(err)
		}
		if s.out.json {
			return s.out.JSON(nonNil(bridges))
		}
		t := s.out.Table(3, "ID", "NAME", "ADDRESS", "STATUS", "FORWARD TO")
		for _, b := range bridges {
			t.Row(b.ID, b.Name, b.Address, b.Status, clip(b.Forward.URL, 60))
		}
		t.Flush()
		return nil
	})
}

func bridgesCreate(inv *invocation) *cobra.Command {
	var fwd forwardFlags
	var delivery string
	c := clientCommand(inv, &cobra.Command{
		Use:   "create NAME --url URL [flags]",
		Short: "Create a bridge; prints its XMTP address and its webhook secret, once",
		Example: "  bridge bridges create echo --url http://127.0.0.1:9000/hook --reply-mode reply\n" +
			"  bridge bridges create bot --url http://127.0.0.1:9/unused --delivery live   # answered by `bridge tail bot --exec …`",
		Args: func(c *cobra.Command, args []string) error {
			if !c.Flags().Changed("url") {
				return usagef("--url is required")
			}
			if err := checkBridgeFlags(c, &fwd, delivery); err != nil {
				return err
			}
			return cobra.ExactArgs(1)(c, args)
		},
	}, func(s *session, c *cobra.Command, args []string) error {
		ch, err := fwd.change(c)
		if err != nil {
			return err
		}
		dm, err := deliveryChange(c, delivery)
		if err != nil {
			return err
		}
		ctx, cancel := timeoutContext(c)
		defer cancel()
		b, secret, err := s.cl.CreateBridge(ctx, args[0], *ch, dm)
		if err != nil {
			return s.fail(err)
		}
		if s.out.json {
			return s.out.JSON(map[string]any{"bridge": b, "webhookSecret": secret})
		}
		s.out.Fields("id", b.ID, "name", b.Name, "address", b.Address, "status", b.Status, "webhook secret", secret)
		s.out.Line("The webhook secret is shown this once; `bridge secret rotate %s` issues a new one.", b.Name)
		return nil
	})
	fwd.add(c)
	addDeliveryFlag(c, &delivery)
	return c
}

func bridgesGet(inv *invocation) *cobra.Command {
	return clientCommand(inv, &cobra.Command{
		Use:   "get BRIDGE",
		Short: "Show a bridge (by id, name or address) and where it runs",
		Args:  cobra.ExactArgs(1),
	}, func(s *session, c *cobra.Command, args []string) error {
		ctx, cancel := timeoutContext(c)
		defer cancel()
		id, err := s.resolveBridge(ctx, args[0])
		if err != nil {
			return s.fail(err)
		}
		b, live, err := s.cl.Bridge(ctx, id)
		if err != nil {
			return s.fail(err)
		}
		if s.out.json {
			return s.out.JSON(map[string]any{"bridge": b, "live": live})
		}
		running := ""
		if live != nil {
			running = live.Live
			if live.Node != "" {
				running += " on node " + live.Node
			}
			if live.Since != "" {
				running += " since " + live.Since
			}
		}
		fields := append([]string{"id", b.ID, "name", b.Name, "address", b.Address, "status", b.Status, "live", running,
			"delivery", b.Delivery},
			forwardFields(b.Forward)...)
		fields = append(fields, "created", when(b.CreatedAt), "updated", when(b.UpdatedAt))
		s.out.Fields(fields...)
		return nil
	})
}

func bridgesUpdate(inv *invocation) *cobra.Command {
	var fwd forwardFlags
	var name, status, delivery string
	c := clientCommand(inv, &cobra.Command{
		Use:     "update BRIDGE [flags]",
		Short:   "Change a bridge's name, status or forward configuration (only the flags given)",
		Example: "  bridge bridges update echo --status disabled\n  bridge bridges update echo --allow 0xabc…,0xdef… --timeout 5s",
		Args: func(c *cobra.Command, args []string) error {
			changed := false
			c.Flags().Visit(func(f *pflag.Flag) { changed = changed || (f.Name != "api" && f.Name != "json") })
			if !changed {
				return usagef("nothing to change: give at least one flag")
			}
			if err := checkBridgeFlags(c, &fwd, delivery); err != nil {
				return err
			}
			return cobra.ExactArgs(1)(c, args)
		},
	}, func(s *session, c *cobra.Command, args []string) error {
		ch, err := fwd.change(c)
		if err != nil {
			return err
		}
		dm, err := deliveryChange(c, delivery)
		if err != nil {
			return err
		}
		change := apiclient.BridgeChange{Forward: ch, Delivery: dm}
		if c.Flags().Changed("name") {
			change.Name = &name
		}
		if c.Flags().Changed("status") {
			change.Status = &status
		}
		ctx, cancel := timeoutContext(c)
		defer cancel()
		id, err := s.resolveBridge(ctx, args[0])
		if err != nil {
			return s.fail(err)
		}
		b, err := s.cl.UpdateBridge(ctx, id, change)
		if err != nil {
			return s.fail(err)
		}
		if s.out.json {
			return s.out.JSON(b)
		}
		s.out.Fields(append([]string{"id", b.ID, "name", b.Name, "address", b.Address, "status", b.Status, "delivery", b.Delivery},
			forwardFields(b.Forward)...)...)
		return nil
	})
	fwd.add(c)
	c.Flags().StringVar(&name, "name", "", "a new name")
	c.Flags().StringVar(&status, "status", "", "active or disabled")
	addDeliveryFlag(c, &delivery)
	_ = c.RegisterFlagCompletionFunc("status", cobra.FixedCompletions([]string{"active", "disabled"}, cobra.ShellCompDirectiveNoFileComp))
	return c
}

func bridgesDelete(inv *invocation) *cobra.Command {
	return clientCommand(inv, &cobra.Command{
		Use:     "delete BRIDGE",
		Aliases: []string{"rm"},
		Short:   "Delete a bridge, its identity and all its data",
		Args:    cobra.ExactArgs(1),
	}, func(s *session, c *cobra.Command, args []string) error {
		ctx, cancel := timeoutContext(c)
		defer cancel()
		id, err := s.resolveBridge(ctx, args[0])
		if err != nil {
			return s.fail(err)
		}
		if err := s.cl.DeleteBridge(ctx, id); err != nil {
			return s.fail(err)
		}
		if s.out.json {
			return s.out.JSON(map[string]any{"id": id, "deleted": true})
		}
		s.out.Line("bridge %s deleted", id)
		return nil
	})
}

// checkBridgeFlags finds bad forward and delivery flags before any login
// is needed.
func checkBridgeFlags(c *cobra.Command, fwd *forwardFlags, delivery string) error {
	if _, err := fwd.change(c); err != nil {
		return err
	}
	_, err := deliveryChange(c, delivery)
	return err
}
