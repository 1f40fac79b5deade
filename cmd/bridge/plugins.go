package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
)

// pluginCommands is `bridge plugins push|list|bind|unbind|delete`, on
// /v1/plugins and /v1/bridges/{id}/plugins/{point} (docs/plugins.md).
func pluginCommands(inv *invocation) []*cobra.Command {
	return []*cobra.Command{group("plugins", "Upload Wasm plug-ins and bind them to a bridge's extension points",
		pluginsPush(inv), pluginsList(inv), pluginsBind(inv), pluginsUnbind(inv), pluginsDelete(inv))}
}

var (
	extensionPoints = []string{"on_message", "on_response", "on_send"}
	onErrorModes    = []string{"forward", "drop", "dead_letter"}
)

// maxPluginFile bounds what push reads of a file; the node's own limit is
// usually lower and its error says so.
const maxPluginFile = 64 << 20

func pluginsPush(inv *invocation) *cobra.Command {
	var name string
	c := clientCommand(inv, &cobra.Command{
		Use:     "push FILE.wasm [--name NAME]",
		Short:   "Upload a Wasm module as a plug-in, or as the next version of the plug-in of that name",
		Example: "  bridge plugins push ./greet.wasm --name greet",
		Args:    cobra.ExactArgs(1),
	}, func(s *session, c *cobra.Command, args []string) error {
		if name == "" {
			name = strings.TrimSuffix(filepath.Base(args[0]), filepath.Ext(args[0]))
		}
		info, err := os.Stat(args[0])
		if err != nil {
			return failf(s.inv, c, "read plug-in: %v", err)
		}
		if info.Size() > maxPluginFile {
			return failf(s.inv, c, "read plug-in: %s is %d bytes, over %d", args[0], info.Size(), maxPluginFile)
		}
		wasm, err := os.ReadFile(args[0])
		if err != nil {
			return failf(s.inv, c, "read plug-in: %v", err)
		}
		ctx, cancel := timeoutContext(c)
		defer cancel()
		p, created, err := s.cl.PushPlugin(ctx, name, wasm)
		if err != nil {
			return s.fail(err)
		}
		if s.out.json {
			return s.out.JSON(map[string]any{"plugin": p, "created": created})
		}
		what := "new version of"
		if created {
			what = "new"
		}
		s.out.Fields("id", p.ID, "name", p.Name, "version", strconv.Itoa(p.Version), "sha256", p.SHA256,
			"size", fmt.Sprintf("%d bytes", p.Size), "exports", strings.Join(p.Exports, ", "))
		s.out.Line("uploaded a %s plug-in; `bridge plugins bind BRIDGE %s %s` runs it", what, firstOr(p.Exports, "on_message"), p.ID)
		return nil
	})
	c.Flags().StringVar(&name, "name", "", "the plug-in's name (default the file's name without .wasm)")
	return c
}

func firstOr(list []string, def string) string {
	if len(list) > 0 {
		return list[0]
	}
	return def
}

func pluginsList(inv *invocation) *cobra.Command {
	return clientCommand(inv, &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List your plug-ins",
		Args:    cobra.NoArgs,
	}, func(s *session, c *cobra.Command, _ []string) error {
		ctx, cancel := timeoutContext(c)
		defer cancel()
		ps, err := s.cl.Plugins(ctx)
		if err != nil {
			return s.fail(err)
		}
		if s.out.json {
			return s.out.JSON(nonNil(ps))
		}
		t := s.out.Table(-1, "ID", "NAME", "VERSION", "SIZE", "EXPORTS", "SHA256", "UPDATED")
		for _, p := range ps {
			t.Row(p.ID, p.Name, strconv.Itoa(p.Version), strconv.FormatInt(p.Size, 10), strings.Join(p.Exports, ","), clip(p.SHA256, 13), when(p.UpdatedAt))
		}
		t.Flush()
		return nil
	})
}

func pointArg(point string) error {
	if !contains(extensionPoints, point) {
		return usagef("extension point %q is not one of %s", point, strings.Join(extensionPoints, ", "))
	}
	return nil
}

func pluginsBind(inv *invocation) *cobra.Command {
	var config []string
	var onError string
	c := clientCommand(inv, &cobra.Command{
		Use:       "bind BRIDGE POINT PLUGIN [--config k=v] [--on-error forward|drop|dead_letter]",
		Short:     "Bind a plug-in (by id) to an extension point of a bridge: on_message, on_response or on_send",
		Example:   "  bridge plugins bind echo on_message 6f1c… --config greeting=hi --on-error drop",
		ValidArgs: extensionPoints,
		Args: func(c *cobra.Command, args []string) error {
			if err := cobra.ExactArgs(3)(c, args); err != nil {
				return err
			}
			if c.Flags().Changed("on-error") && !contains(onErrorModes, onError) {
				return usagef("--on-error %q is not one of %s", onError, strings.Join(onErrorModes, ", "))
			}
			for _, kv := range config {
				if k, _, ok := strings.Cut(kv, "="); !ok || k == "" {
					return usagef("--config %q is not key=value", kv)
				}
			}
			return pointArg(args[1])
		},
	}, func(s *session, c *cobra.Command, args []string) error {
		cfg := map[string]string{}
		for _, kv := range config {
			k, v, _ := strings.Cut(kv, "=")
			cfg[k] = v
		}
		ctx, cancel := timeoutContext(c)
		defer cancel()
		id, err := s.resolveBridge(ctx, args[0])
		if err != nil {
			return s.fail(err)
		}
		pluginID, err := s.resolvePlugin(ctx, args[2])
		if err != nil {
			return s.fail(err)
		}
		b, err := s.cl.BindPlugin(ctx, id, args[1], pluginID, cfg, onError)
		if err != nil {
			return s.fail(err)
		}
		if s.out.json {
			return s.out.JSON(b)
		}
		keys := make([]string, 0, len(b.Config))
		for k := range b.Config {
			keys = append(keys, k)
		}
		s.out.Fields("bridge", b.Bridge, "extension point", b.ExtensionPoint, "plugin", b.Plugin, "sha256", b.SHA256,
			"on error", b.OnError, "config keys", strings.Join(keys, ", "))
		return nil
	})
	c.Flags().StringArrayVar(&config, "config", nil, "a key=value the plug-in reads (repeat)")
	c.Flags().StringVar(&onError, "on-error", "", "what a failing plug-in does to the message: forward (default), drop or dead_letter")
	_ = c.RegisterFlagCompletionFunc("on-error", cobra.FixedCompletions(onErrorModes, cobra.ShellCompDirectiveNoFileComp))
	return c
}

// resolvePlugin returns the id of the plug-in ref names: its id, or the
// one plug-in of that name.
func (s *session) resolvePlugin(ctx context.Context, ref string) (string, error) {
	if uuidPattern.MatchString(ref) {
		return ref, nil
	}
	ps, err := s.cl.Plugins(ctx)
	if err != nil {
		return "", err
	}
	for _, p := range ps {
		if p.Name == ref {
			return p.ID, nil
		}
	}
	return "", fmt.Errorf("find plug-in: no plug-in has the id or name %q", ref)
}

func pluginsUnbind(inv *invocation) *cobra.Command {
	return clientCommand(inv, &cobra.Command{
		Use:       "unbind BRIDGE POINT",
		Short:     "Remove the plug-in bound to an extension point of a bridge",
		ValidArgs: extensionPoints,
		Args: func(c *cobra.Command, args []string) error {
			if err := cobra.ExactArgs(2)(c, args); err != nil {
				return err
			}
			return pointArg(args[1])
		},
	}, func(s *session, c *cobra.Command, args []string) error {
		ctx, cancel := timeoutContext(c)
		defer cancel()
		id, err := s.resolveBridge(ctx, args[0])
		if err != nil {
			return s.fail(err)
		}
		if err := s.cl.UnbindPlugin(ctx, id, args[1]); err != nil {
			return s.fail(err)
		}
		if s.out.json {
			return s.out.JSON(map[string]any{"bridgeId": id, "extensionPoint": args[1], "unbound": true})
		}
		s.out.Line("%s of bridge %s has no plug-in now", args[1], args[0])
		return nil
	})
}

func pluginsDelete(inv *invocation) *cobra.Command {
	return clientCommand(inv, &cobra.Command{
		Use:     "delete PLUGIN",
		Aliases: []string{"rm"},
		Short:   "Delete a plug-in (by id or name) that no bridge is bound to",
		Args:    cobra.ExactArgs(1),
	}, func(s *session, c *cobra.Command, args []string) error {
		ctx, cancel := timeoutContext(c)
		defer cancel()
		id, err := s.resolvePlugin(ctx, args[0])
		if err != nil {
			return s.fail(err)
		}
		if err := s.cl.DeletePlugin(ctx, id); err != nil {
			return s.fail(err)
		}
		if s.out.json {
			return s.out.JSON(map[string]any{"id": id, "deleted": true})
		}
		s.out.Line("plug-in %s deleted", id)
		return nil
	})
}
