package config

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// DevMasterKeyFile is the file, under the data directory, that keeps the
// master key of dev mode across restarts.
const DevMasterKeyFile = "dev-master-key"

// PrepareDev fills the secrets that dev mode does not require: the master
// key is read from dataDir/dev-master-key (created with mode 0600 on first
// use), and a missing admin token or signup key is generated and written
// once to out, the terminal, never to a log. Values set in the environment
// are kept.
func (c *Config) PrepareDev(dataDir string, out io.Writer) error {
	if c.Mode != ModeDev {
		return fmt.Errorf("prepare dev secrets: mode is %s, not dev", c.Mode)
	}
	if c.MasterKey.Key == nil {
		key, created, err := devMasterKey(filepath.Join(dataDir, DevMasterKeyFile))
		if err != nil {
			return err
		}
		c.MasterKey.Key = key
		if created {
			fmt.Fprintf(out, "dev: created a master key in %s (keep it: it decrypts the dev database)\n", filepath.Join(dataDir, DevMasterKeyFile))
		}
	}
	if c.AdminToken == "" {
		t, err := randomToken("adm_")
		if err != nil {
			return err
		}
		c.AdminToken = t
		fmt.Fprintf(out, "dev: admin token for this run (set %s to keep one): %s\n", EnvAdminToken, t)
	}
	if c.SignupKey == "" && !c.SignupOpen {
		t, err := randomToken("sk_")
		if err != nil {
			return err
		}
		c.SignupKey = t
		fmt.Fprintf(out, "dev: signup key for this run (set %s to keep one): %s\n", EnvSignupKey, t)
	}
	return nil
}

// devMasterKey reads the key file at path, or creates it when it does not
// exist. It refuses a file that other users can read.
func devMasterKey(path string) (key []byte, created bool, err error) {
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		info, err := os.Stat(path)
		if err != nil {
			return nil, false, fmt.Errorf("read dev master key: %w", err)
		}
		if info.Mode().Perm()&0o077 != 0 {
			return nil, false, fmt.Errorf("read dev master key: %s has mode %v; run chmod 600 %s", path, info.Mode().Perm(), path)
		}
		key, ok := decodeKey(strings.TrimSpace(string(b)))
		if !ok {
			return nil, false, fmt.Errorf("read dev master key: %s does not hold base64 of 32 bytes; delete it to make a new one (the dev database then needs a reset)", path)
		}
		return key, false, nil
	case errors.Is(err, fs.ErrNotExist):
	default:
		return nil, false, fmt.Errorf("read dev master key: %w", err)
	}

	key = make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, false, fmt.Errorf("generate dev master key: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, false, fmt.Errorf("create data directory: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, false, fmt.Errorf("write dev master key: %w", err)
	}
	_, werr := f.WriteString(base64.StdEncoding.EncodeToString(key) + "\n")
	if err := errors.Join(werr, f.Close()); err != nil {
		os.Remove(path)
		return nil, false, fmt.Errorf("write dev master key: %w", err)
	}
	return key, true, nil
}

func randomToken(prefix string) (string, error) {
	b := make([]byte, 20)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generate token: %w", err)
	}
	return prefix + hex.EncodeToString(b), nil
}
