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

// Files under the data directory that keep dev mode's secrets across
// restarts, each with mode 0600.
const (
	// DevMasterKeyFile keeps the master key.
	DevMasterKeyFile = "dev-master-key"
	// DevAdminTokenFile keeps the generated admin token.
	DevAdminTokenFile = "dev-admin-token"
	// DevSignupKeyFile keeps the generated signup key.
	DevSignupKeyFile = "dev-signup-key"
)

// PrepareDev fills the secrets that dev mode does not require: the master
// key, the admin token and the signup key are read from dataDir
// (dev-master-key, dev-admin-token, dev-signup-key), each created with mode
// 0600 on first use, so they stay the same across restarts until `make
// clean-data`. The admin token and signup key are written to out, the
// terminal, never to a log. Values set in the environment are kept.
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
		path := filepath.Join(dataDir, DevAdminTokenFile)
		t, err := devToken(path, "adm_")
		if err != nil {
			return err
		}
		c.AdminToken = t
		fmt.Fprintf(out, "dev: admin token, kept in %s: %s\n", path, t)
	}
	if c.SignupKey == "" && !c.SignupOpen {
		path := filepath.Join(dataDir, DevSignupKeyFile)
		t, err := devToken(path, "sk_")
		if err != nil {
			return err
		}
		c.SignupKey = t
		fmt.Fprintf(out, "dev: signup key, kept in %s: %s\n", path, t)
	}
	return nil
}

// ReadDevMasterKey reads the dev master key in dataDir without creating
// it; exists is false when there is none yet.
func ReadDevMasterKey(dataDir string) (key []byte, exists bool, err error) {
	path := filepath.Join(dataDir, DevMasterKeyFile)
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return nil, false, nil
	}
	key, _, err = devMasterKey(path)
	return key, err == nil, err
}

// devToken reads the token kept at path, or generates one with prefix and
// keeps it there with mode 0600. It refuses a file others can read.
func devToken(path, prefix string) (string, error) {
	b, err := readPrivate(path)
	switch {
	case err == nil:
		t := strings.TrimSpace(string(b))
		if !strings.HasPrefix(t, prefix) || len(t) < 16 || strings.ContainsAny(t, " \t\r\n") {
			return "", fmt.Errorf("read %s: it does not hold a %s… token; delete it to make a new one", path, prefix)
		}
		return t, nil
	case !errors.Is(err, fs.ErrNotExist):
		return "", err
	}
	t, err := randomToken(prefix)
	if err != nil {
		return "", err
	}
	if err := writePrivate(path, t+"\n"); err != nil {
		return "", err
	}
	return t, nil
}

// readPrivate reads a file of dev secrets, refusing one that other users
// can read.
func readPrivate(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	info, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if info.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("read %s: it has mode %v; run chmod 600 %s", path, info.Mode().Perm(), path)
	}
	return b, nil
}

// writePrivate creates path with mode 0600 (and its directory with 0700)
// holding text; it never overwrites a file.
func writePrivate(path, text string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("create data directory: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	_, werr := f.WriteString(text)
	if err := errors.Join(werr, f.Close()); err != nil {
		os.Remove(path)
		return fmt.Errorf("write %s: %w", path, err)
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
