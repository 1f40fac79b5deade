package config

import (
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// parser reads variables one at a time and collects every problem, so that
// Load can report all of them together.
type parser struct {
	lookup   func(string) (string, bool)
	problems []*Problem
}

// get returns the variable's value; an empty value counts as unset.
func (p *parser) get(name string) (string, bool) {
	v, ok := p.lookup(name)
	if !ok || v == "" {
		return "", false
	}
	return v, true
}

func (p *parser) problem(name, message string) {
	example := ""
	if v, ok := LookupVar(name); ok {
		example = v.Example
	}
	p.problems = append(p.problems, &Problem{Var: name, Message: message, Example: example})
}

func (p *parser) failed(name string) bool {
	for _, pr := range p.problems {
		if pr.Var == name {
			return true
		}
	}
	return false
}

// quote shows a non-secret value in an error, shortened so a huge value
// cannot flood the terminal.
func quote(v string) string {
	const max = 64
	if utf8.RuneCountInString(v) > max {
		r := []rune(v)
		v = string(r[:max]) + "…"
	}
	return strconv.Quote(v)
}

func (p *parser) databaseURL(name string) string {
	v, ok := p.get(name)
	if !ok {
		return ""
	}
	// The value may hold a password, so no message repeats it.
	u, err := url.Parse(v)
	switch {
	case err != nil:
		p.problem(name, "is not a URL")
	case u.Scheme != "postgres" && u.Scheme != "postgresql":
		p.problem(name, "is not a postgres:// or postgresql:// URL")
	case u.Opaque != "" || (u.Host == "" && u.Query().Get("host") == ""):
		p.problem(name, "has no host (write postgres://user@host:port/database, or ?host=/socket/dir for a Unix socket)")
	default:
		return v
	}
	return ""
}

func (p *parser) hostPort(name, def string) string {
	v, ok := p.get(name)
	if !ok {
		return def
	}
	host, port, err := splitHostPort(v)
	if err != nil {
		p.problem(name, quote(v)+" is not host:port")
		return def
	}
	if name == EnvXMTPNode && (host == "" || port == "0") {
		p.problem(name, quote(v)+" needs a host and a non-zero port to dial")
		return def
	}
	return v
}

// splitHostPort splits a host:port and checks that the port is a number
// from 0 to 65535.
func splitHostPort(v string) (host, port string, err error) {
	host, port, err = net.SplitHostPort(v)
	if err != nil {
		return "", "", err
	}
	n, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return "", "", fmt.Errorf("parse port: %w", err)
	}
	if strings.ContainsFunc(host, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) {
		return "", "", fmt.Errorf("parse host: contains spaces")
	}
	return host, strconv.FormatUint(n, 10), nil
}

// validName reports whether v is 1 to max ASCII letters, digits and the
// characters in extra.
func validName(v string, max int, extra string) bool {
	if len(v) == 0 || len(v) > max {
		return false
	}
	for _, r := range v {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune(extra, r)) {
			return false
		}
	}
	return true
}

func validNodeID(v string) bool { return validName(v, 63, "._-") }

func validKeyID(v string) bool { return validName(v, 32, "_-") }

func (p *parser) nodeID(name, def string) string {
	v, ok := p.get(name)
	if !ok {
		return def
	}
	if !validNodeID(v) {
		p.problem(name, quote(v)+" is not 1 to 63 letters, digits, '.', '_' or '-'")
		return def
	}
	return v
}

func (p *parser) logLevel(name string) slog.Level {
	v, ok := p.get(name)
	if !ok {
		return slog.LevelInfo
	}
	switch strings.ToLower(v) {
	case "debug":
		return slog.LevelDebug
	case "info":
		return slog.LevelInfo
	case "warn", "warning":
		return slog.LevelWarn
	case "error":
		return slog.LevelError
	}
	p.problem(name, quote(v)+" is not one of debug, info, warn, error")
	return slog.LevelInfo
}

func (p *parser) oneOf(name, def string, allowed ...string) string {
	v, ok := p.get(name)
	if !ok {
		return def
	}
	for _, a := range allowed {
		if strings.EqualFold(v, a) {
			return a
		}
	}
	p.problem(name, quote(v)+" is not one of "+strings.Join(allowed, ", "))
	return def
}

func (p *parser) duration(name string, def, min, max time.Duration) time.Duration {
	v, ok := p.get(name)
	if !ok {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		p.problem(name, quote(v)+" is not a duration")
		return def
	}
	if d < min || d > max {
		p.problem(name, fmt.Sprintf("%s is outside %s to %s", quote(v), min, max))
		return def
	}
	return d
}

func (p *parser) boolean(name string, def bool) bool {
	v, ok := p.get(name)
	if !ok {
		return def
	}
	switch strings.ToLower(v) {
	case "1", "t", "true", "yes", "on":
		return true
	case "0", "f", "false", "no", "off":
		return false
	}
	p.problem(name, quote(v)+" is not a boolean (true or false)")
	return def
}

func (p *parser) integer(name string, def, min, max int) int {
	v, ok := p.get(name)
	if !ok {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		p.problem(name, quote(v)+" is not a whole number")
		return def
	}
	if n < min || n > max {
		p.problem(name, fmt.Sprintf("%d is outside %d to %d", n, min, max))
		return def
	}
	return n
}

func (p *parser) keyID(name, def string) string {
	v, ok := p.get(name)
	if !ok {
		return def
	}
	if !validKeyID(v) {
		p.problem(name, quote(v)+" is not 1 to 32 letters, digits, '_' or '-'")
		return def
	}
	return v
}

// decodeKey decodes a 32-byte key written in standard or URL-safe base64,
// with or without padding.
func decodeKey(v string) ([]byte, bool) {
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		b, err := enc.DecodeString(v)
		if err == nil && len(b) == 32 {
			return b, true
		}
	}
	return nil, false
}

func (p *parser) masterKey(name string) []byte {
	v, ok := p.get(name)
	if !ok {
		return nil
	}
	b, ok := decodeKey(v)
	if !ok {
		p.problem(name, "is not base64 of exactly 32 bytes (make one with `openssl rand -base64 32`)")
		return nil
	}
	return b
}

func (p *parser) previousKeys(name string) []MasterKey {
	v, ok := p.get(name)
	if !ok {
		return nil
	}
	var keys []MasterKey
	seen := map[string]bool{}
	for i, entry := range strings.Split(v, ",") {
		entry = strings.TrimSpace(entry)
		id, raw, found := strings.Cut(entry, ":")
		// Only the key id is shown: the rest of an entry may be a key.
		switch {
		case !found:
			p.problem(name, fmt.Sprintf("entry %d is not id:base64", i+1))
		case !validKeyID(id):
			p.problem(name, fmt.Sprintf("entry %d has a key id that is not 1 to 32 letters, digits, '_' or '-'", i+1))
		case seen[id]:
			p.problem(name, fmt.Sprintf("entry %d repeats key id %s", i+1, quote(id)))
		default:
			key, ok := decodeKey(raw)
			if !ok {
				p.problem(name, fmt.Sprintf("entry %d (key id %s) is not base64 of exactly 32 bytes", i+1, quote(id)))
				continue
			}
			seen[id] = true
			keys = append(keys, MasterKey{ID: id, Key: key})
		}
	}
	return keys
}

func (p *parser) token(name string) string {
	v, ok := p.get(name)
	if !ok {
		return ""
	}
	// Tokens are secret: the messages describe them without showing them.
	switch {
	case len(v) < 16:
		p.problem(name, fmt.Sprintf("is %d characters long; use at least 16", len(v)))
	case len(v) > 512:
		p.problem(name, fmt.Sprintf("is %d characters long; use at most 512", len(v)))
	case !utf8.ValidString(v) || strings.ContainsFunc(v, func(r rune) bool { return r > unicode.MaxASCII || !unicode.IsPrint(r) || unicode.IsSpace(r) }):
		p.problem(name, "contains spaces, control or non-ASCII characters")
	default:
		return v
	}
	return ""
}

// httpURL reads an absolute http or https URL.
func (p *parser) httpURL(name string) string {
	v, ok := p.get(name)
	if !ok {
		return ""
	}
	u, err := url.Parse(v)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		p.problem(name, quote(v)+" is not an absolute http:// or https:// URL")
		return ""
	}
	return v
}

// name reads a cluster name: letters, digits, '.', '_' and '-'.
func (p *parser) name(name, def string) string {
	v, ok := p.get(name)
	if !ok {
		return def
	}
	if !validName(v, 63, "._-") {
		p.problem(name, quote(v)+" is not 1 to 63 letters, digits, '.', '_' or '-'")
		return def
	}
	return v
}

// host reads a host name or IP address without a port.
func (p *parser) host(name, def string) string {
	v, ok := p.get(name)
	if !ok {
		return def
	}
	if strings.Contains(v, "://") || strings.ContainsAny(v, "/ \t") || (strings.Contains(v, ":") && net.ParseIP(v) == nil) {
		p.problem(name, quote(v)+" is not a host name or IP address (no scheme, no port)")
		return def
	}
	return v
}

// hostPortList reads comma-separated host:port values, each with a host and
// a non-zero port.
func (p *parser) hostPortList(name string, def []string) []string {
	v, ok := p.get(name)
	if !ok {
		return def
	}
	var out []string
	for _, item := range strings.Split(v, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		host, port, err := splitHostPort(item)
		if err != nil || host == "" || port == "0" {
			p.problem(name, quote(item)+" is not host:port with a host and a non-zero port")
			return def
		}
		out = append(out, item)
	}
	if len(out) == 0 {
		return def
	}
	return out
}

// keyPrefix reads an etcd key prefix: it starts with '/' and has no spaces.
func (p *parser) keyPrefix(name, def string) string {
	v, ok := p.get(name)
	if !ok {
		return def
	}
	if !strings.HasPrefix(v, "/") || strings.ContainsFunc(v, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) {
		p.problem(name, quote(v)+" must start with '/' and contain no spaces")
		return def
	}
	return strings.TrimRight(v, "/")
}

// headerName reads an HTTP header name.
func (p *parser) headerName(name string) string {
	v, ok := p.get(name)
	if !ok {
		return ""
	}
	if !validName(v, 64, "-_") {
		p.problem(name, quote(v)+" is not an HTTP header name (letters, digits, '-')")
		return ""
	}
	return v
}

// addressList reads comma-separated IP addresses and CIDRs.
func (p *parser) addressList(name string) []string {
	v, ok := p.get(name)
	if !ok {
		return nil
	}
	var out []string
	for _, item := range strings.Split(v, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		if net.ParseIP(item) == nil {
			if _, _, err := net.ParseCIDR(item); err != nil {
				p.problem(name, quote(item)+" is not an IP address or CIDR")
				return nil
			}
		}
		out = append(out, item)
	}
	return out
}

// maxCAFileBytes bounds the certificate file BRIDGE_XMTP_CA_FILE names.
const maxCAFileBytes = 1 << 20

// certPool reads the PEM file a variable names and returns its name and
// the certificates in it; a file that cannot be read, is not a regular
// file, is too large or holds no certificate is a problem.
func (p *parser) certPool(name string) (string, *x509.CertPool) {
	path, ok := p.get(name)
	if !ok {
		return "", nil
	}
	// A device or a pipe could block the start or never end: only a
	// regular file (or a link to one, as mounted secrets are) is read.
	if fi, err := os.Stat(path); err != nil {
		p.problem(name, "cannot be read: "+err.Error())
		return path, nil
	} else if !fi.Mode().IsRegular() {
		p.problem(name, quote(path)+" is not a regular file")
		return path, nil
	}
	f, err := os.Open(path)
	if err != nil {
		p.problem(name, "cannot be read: "+err.Error())
		return path, nil
	}
	defer f.Close()
	raw, err := io.ReadAll(io.LimitReader(f, maxCAFileBytes+1))
	if err != nil {
		p.problem(name, "cannot be read: "+err.Error())
		return path, nil
	}
	if len(raw) > maxCAFileBytes {
		p.problem(name, quote(path)+" is larger than 1 MiB: it should hold a few PEM certificates")
		return path, nil
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(raw) {
		p.problem(name, quote(path)+" holds no PEM certificate")
		return path, nil
	}
	return path, pool
}

// line reads one line of UTF-8 text of at most max bytes.
func (p *parser) line(name, def string, max int) string {
	v, ok := p.get(name)
	if !ok {
		return def
	}
	switch {
	case strings.TrimSpace(v) == "":
		p.problem(name, "is empty; unset it for the default, or give one line of text such as \""+def+"\"")
	case len(v) > max:
		p.problem(name, fmt.Sprintf("is %d bytes; at most %d", len(v), max))
	case !utf8.ValidString(v) || strings.ContainsAny(v, "\r\n\x00"):
		p.problem(name, "must be one line of UTF-8 text")
	default:
		return v
	}
	return def
}
