package main

import (
	"github.com/spf13/cobra"

	"github.com/xmtpbridge/bridge/internal/apiclient"
)

// accountCommands are `bridge account` and `bridge keys`.
func accountCommands(inv *invocation) []*cobra.Command {
	return []*cobra.Command{
		clientCommand(inv, &cobra.Command{
			Use:   "account",
			Short: "Show the account you are logged in as",
			Args:  cobra.NoArgs,
		}, func(s *session, c *cobra.Command, _ []string) error {
			ctx, cancel := timeoutContext(c)
			defer cancel()
			a, err := s.cl.Account(ctx)
			if err != nil {
				return s.fail(err)
			}
			if s.out.json {
				return s.out.JSON(a)
			}
			s.out.Fields("id", a.ID, "name", a.Name, "system", a.SystemName, "created", when(a.CreatedAt), "api", s.cl.BaseURL)
			return nil
		}),
		group("keys", "List, create and revoke the account's API keys", keysList(inv), keysCreate(inv), keysRevoke(inv)),
	}
}

func keysList(inv *invocation) *cobra.Command {
	return clientCommand(inv, &cobra.Command{
		Use:   "list",
		Short: "List the account's API keys (never their secrets)",
		Args:  cobra.NoArgs,
	}, func(s *session, c *cobra.Command, _ []string) error {
		ctx, cancel := timeoutContext(c)
		defer cancel()
		keys, err := s.cl.APIKeys(ctx)
		if err != nil {
			return s.fail(err)
		}
		if s.out.json {
			return s.out.JSON(nonNil(keys))
		}
		t := s.out.Table(3, "ID", "PREFIX", "NAME", "STATUS", "CREATED", "LAST USED")
		for _, k := range keys {
			status := "active"
			if k.RevokedAt != nil {
				status = "revoked"
			}
			t.Row(k.ID, k.Prefix, k.Name, status, when(k.CreatedAt), whenPtr(k.LastUsedAt))
		}
		t.Flush()
		return nil
	})
}

func keysCreate(inv *invocation) *cobra.Command {
	var name string
	c := clientCommand(inv, &cobra.Command{
		Use:   "create [--name NAME]",
		Short: "Create an API key; its secret is printed once",
		Args:  cobra.NoArgs,
	}, func(s *session, c *cobra.Command, _ []string) error {
		ctx, cancel := timeoutContext(c)
		defer cancel()
		k, secret, err := s.cl.CreateAPIKey(ctx, name)
		if err != nil {
			return s.fail(err)
		}
		if s.out.json {
			return s.out.JSON(map[string]any{"apiKey": secret, "apiKeyInfo": k})
		}
		s.out.Fields("id", k.ID, "name", k.Name, "prefix", k.Prefix, "api key", secret)
		s.out.Line("The API key is shown this once; keep it somewhere safe.")
		return nil
	})
	c.Flags().StringVar(&name, "name", "", "a name for the key")
	return c
}

func keysRevoke(inv *invocation) *cobra.Command {
	return clientCommand(inv, &cobra.Command{
		Use:   "revoke KEY_ID",
		Short: "Revoke an API key",
		Args:  cobra.ExactArgs(1),
	}, func(s *session, c *cobra.Command, args []string) error {
		ctx, cancel := timeoutContext(c)
		defer cancel()
		if err := s.cl.RevokeAPIKey(ctx, args[0]); err != nil {
			return s.fail(err)
		}
		if s.out.json {
			return s.out.JSON(map[string]any{"id": args[0], "revoked": true})
		}
		s.out.Line("API key %s revoked", apiclient.Printable(args[0], 100))
		return nil
	})
}

// clientCommand gives c the client flags and runs f with a session.
func clientCommand(inv *invocation, c *cobra.Command, f func(*session, *cobra.Command, []string) error) *cobra.Command {
	var flags clientFlags
	flags.add(c)
	c.RunE = func(cmd *cobra.Command, args []string) error {
		s, err := newSession(cmd, inv, &flags)
		if err != nil {
			return err
		}
		return f(s, cmd, args)
	}
	return c
}

// nonNil makes an empty list print as [] in JSON.
func nonNil[T any](list []T) []T {
	if list == nil {
		return []T{}
	}
	return list
}
