package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/xmtpbridge/bridge/internal/apiclient"
)

// savedLogin is what `bridge login` keeps in the config file.
type savedLogin struct {
	API    string `json:"api"`
	APIKey string `json:"apiKey"`
}

// maxLoginFile bounds the config file read.
const maxLoginFile = 64 << 10

// loginPath is $XDG_CONFIG_HOME/xmtpbridge/config.json, with
// $HOME/.config for an unset XDG_CONFIG_HOME.
func loginPath(inv *invocation) (string, error) {
	dir := strings.TrimSpace(inv.env("XDG_CONFIG_HOME"))
	if dir == "" {
		home := strings.TrimSpace(inv.env("HOME"))
		if home == "" {
			return "", errors.New("find config directory: neither XDG_CONFIG_HOME nor HOME is set")
		}
		dir = filepath.Join(home, ".config")
	}
	return filepath.Join(dir, "xmtpbridge", "config.json"), nil
}

// loadLogin reads the saved login; a missing file is no login.
func loadLogin(inv *invocation) (savedLogin, error) {
	path, err := loginPath(inv)
	if err != nil {
		return savedLogin{}, nil
	}
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return savedLogin{}, nil
	}
	if err != nil {
		return savedLogin{}, fmt.Errorf("read login: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxLoginFile+1))
	if err != nil {
		return savedLogin{}, fmt.Errorf("read login: %w", err)
	}
	return parseLogin(data, path)
}

// parseLogin decodes the config file's content.
func parseLogin(data []byte, path string) (savedLogin, error) {
	if len(data) > maxLoginFile {
		return savedLogin{}, fmt.Errorf("read login %s: larger than %d bytes", path, maxLoginFile)
	}
	var l savedLogin
	if err := json.Unmarshal(data, &l); err != nil {
		return savedLogin{}, fmt.Errorf("read login %s: not JSON of {api, apiKey}: run `bridge login` again", path)
	}
	return l, nil
}

// saveLogin writes the login to its file, mode 0600 in a directory of
// mode 0700, replacing the old file at once.
func saveLogin(inv *invocation, l savedLogin) (string, error) {
	path, err := loginPath(inv)
	if err != nil {
		return "", err
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("create config directory: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return "", fmt.Errorf("restrict config directory: %w", err)
	}
	b, err := json.MarshalIndent(l, "", "  ")
	if err != nil {
		return "", fmt.Errorf("encode login: %w", err)
	}
	tmp, err := os.CreateTemp(dir, ".config-*.json")
	if err != nil {
		return "", fmt.Errorf("write login: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return "", fmt.Errorf("write login: %w", err)
	}
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		tmp.Close()
		return "", fmt.Errorf("write login: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return "", fmt.Errorf("write login: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return "", fmt.Errorf("write login: %w", err)
	}
	return path, nil
}

func loginCommands(inv *invocation) []*cobra.Command {
	var f clientFlags
	var keyStdin, signup bool
	var name string
	c := &cobra.Command{
		Use:   "login --api URL",
		Short: "Save the API and an API key for the other commands",
		Long: "Reads an API key from stdin (a prompt without echo on a terminal; --api-key-stdin says so\n" +
			"explicitly), checks it against the API and saves both in $XDG_CONFIG_HOME/xmtpbridge/config.json,\n" +
			"mode 0600. With --signup it reads the signup key instead, creates an account and saves its key.\n" +
			"BRIDGE_API_URL and BRIDGE_API_KEY override the saved login. The key is never printed.",
		Example: "  bridge login --api http://127.0.0.1:8080 --api-key-stdin < key.txt\n" +
			"  echo \"$SIGNUP_KEY\" | bridge login --api http://127.0.0.1:8080 --signup --name me",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if name != "" && !signup {
				return usagef("--name goes with --signup")
			}
			saved, _ := loadLogin(inv)
			api := f.apiURL(inv, saved)
			if err := apiclient.CheckBaseURL(api); err != nil {
				return usagef("%v", err)
			}
			out := newPrinter(inv, f.json)
			ctx, cancel := timeoutContext(cmd)
			defer cancel()
			cl := &apiclient.Client{BaseURL: api, UserAgent: userAgent()}
			s := &session{inv: inv, cl: cl, out: out, cmd: cmd.CommandPath()}
			var created bool
			if signup {
				signupKey, err := readSecret(inv, "Signup key: ")
				if err != nil {
					return failf(inv, cmd, "%v", err)
				}
				if name == "" {
					name = "me"
				}
				_, key, err := cl.CreateAccount(ctx, name, signupKey)
				if err != nil {
					return s.fail(err)
				}
				cl.Token, created = key, true
			} else {
				key, err := readSecret(inv, "API key: ")
				if err != nil {
					return failf(inv, cmd, "%v", err)
				}
				if key == "" {
					return usagef("no API key on stdin")
				}
				cl.Token = key
			}
			acct, err := cl.Account(ctx)
			if err != nil {
				return s.fail(err)
			}
			path, err := saveLogin(inv, savedLogin{API: api, APIKey: cl.Token})
			if err != nil {
				return failf(inv, cmd, "%v", err)
			}
			if out.json {
				return out.JSON(map[string]any{"api": api, "account": acct, "created": created, "configFile": path})
			}
			if created {
				out.Line("created account %s (%s) on %s", apiclient.Printable(acct.Name, 200), acct.ID, api)
			}
			out.Line("logged in to %s as %s (%s); saved in %s", api, apiclient.Printable(acct.Name, 200), acct.ID, path)
			return nil
		},
	}
	f.add(c)
	c.Flags().BoolVar(&keyStdin, "api-key-stdin", false, "read the API key from stdin (the default when stdin is not a terminal)")
	c.Flags().BoolVar(&signup, "signup", false, "create an account with the signup key read from stdin, and log in with its key")
	c.Flags().StringVar(&name, "name", "", "name of the account --signup creates (default me)")
	c.MarkFlagsMutuallyExclusive("api-key-stdin", "signup")
	return []*cobra.Command{c}
}
