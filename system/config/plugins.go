package config

import (
	"regexp"
	"strings"
	"time"
)

// Names of the plug-in variables.
const (
	EnvDataDir              = "BRIDGE_DATA_DIR"
	EnvPluginKeepResident   = "BRIDGE_PLUGIN_KEEP_RESIDENT"
	EnvPluginRefetchAfter   = "BRIDGE_PLUGIN_REFETCH_AFTER"
	EnvPluginMaxMemory      = "BRIDGE_PLUGIN_MAX_MEMORY"
	EnvPluginTimeout        = "BRIDGE_PLUGIN_TIMEOUT"
	EnvPluginMaxOutput      = "BRIDGE_PLUGIN_MAX_OUTPUT"
	EnvPluginMaxUpload      = "BRIDGE_PLUGIN_MAX_UPLOAD"
	EnvPluginAllowedHosts   = "BRIDGE_PLUGIN_ALLOWED_HOSTS"
	EnvPluginMaxPerAccount  = "BRIDGE_PLUGIN_MAX_PER_ACCOUNT"
	defaultPluginMaxMemory  = 16 << 20
	defaultPluginMaxOutput  = 1 << 20
	defaultPluginMaxUpload  = 8 << 20
	defaultPluginPerAccount = 20
)

// Plugins configures the Wasm plug-in runtime.
type Plugins struct {
	// DataDir is the node's data directory.
	DataDir string
	// KeepResident, RefetchAfter and Timeout are the residency,
	// re-validation and call time limits.
	KeepResident time.Duration
	RefetchAfter time.Duration
	Timeout      time.Duration
	// MaxMemory, MaxOutput and MaxUpload are byte limits.
	MaxMemory int
	MaxOutput int
	MaxUpload int
	// MaxPerAccount is the plug-in quota of an account.
	MaxPerAccount int
	// AllowedHosts are the hosts plug-ins may call; empty: none.
	AllowedHosts []string
}

func (p *parser) plugins() Plugins {
	return Plugins{
		DataDir:       p.directory(EnvDataDir, ".data"),
		KeepResident:  p.duration(EnvPluginKeepResident, 5*time.Second, 0, time.Hour),
		RefetchAfter:  p.duration(EnvPluginRefetchAfter, time.Minute, time.Second, 24*time.Hour),
		Timeout:       p.duration(EnvPluginTimeout, 100*time.Millisecond, time.Millisecond, time.Minute),
		MaxMemory:     p.integer(EnvPluginMaxMemory, defaultPluginMaxMemory, 1<<20, 1<<30),
		MaxOutput:     p.integer(EnvPluginMaxOutput, defaultPluginMaxOutput, 1<<10, 64<<20),
		MaxUpload:     p.integer(EnvPluginMaxUpload, defaultPluginMaxUpload, 1<<10, 256<<20),
		MaxPerAccount: p.integer(EnvPluginMaxPerAccount, defaultPluginPerAccount, 1, 100_000),
		AllowedHosts:  p.hostPatterns(EnvPluginAllowedHosts),
	}
}

// directory reads a path; it must not be blank or hold a NUL.
func (p *parser) directory(name, def string) string {
	v, ok := p.get(name)
	if !ok {
		return def
	}
	if strings.TrimSpace(v) == "" || strings.ContainsRune(v, 0) {
		p.problem(name, quote(v)+" is not a directory path")
		return def
	}
	return v
}

var hostPattern = regexp.MustCompile(`^[A-Za-z0-9*?]([A-Za-z0-9*?.-]{0,252})$`)

// hostPatterns reads comma-separated host names, which may hold * and ?
// globs: no scheme, port or path.
func (p *parser) hostPatterns(name string) []string {
	v, ok := p.get(name)
	if !ok {
		return nil
	}
	var out []string
	for _, h := range strings.Split(v, ",") {
		h = strings.TrimSpace(h)
		if !hostPattern.MatchString(h) || h == "*" {
			p.problem(name, quote(h)+" is not a host name or a host glob such as *.example.com (a bare * would allow every host)")
			return nil
		}
		out = append(out, strings.ToLower(h))
	}
	return out
}
