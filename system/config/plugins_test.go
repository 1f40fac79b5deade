package config

import (
	"slices"
	"testing"
	"time"
)

func TestLoadPluginSettings(t *testing.T) {
	c, err := Load(env(), WithMode(ModeDev))
	if err != nil {
		t.Fatal(err)
	}
	want := Plugins{DataDir: ".data", KeepResident: 5 * time.Second, RefetchAfter: time.Minute, Timeout: 100 * time.Millisecond,
		MaxMemory: 16 << 20, MaxOutput: 1 << 20, MaxUpload: 8 << 20, MaxPerAccount: 20}
	if c.Plugins.DataDir != want.DataDir || c.Plugins.KeepResident != want.KeepResident || c.Plugins.RefetchAfter != want.RefetchAfter ||
		c.Plugins.Timeout != want.Timeout || c.Plugins.MaxMemory != want.MaxMemory || c.Plugins.MaxOutput != want.MaxOutput ||
		c.Plugins.MaxUpload != want.MaxUpload || c.Plugins.MaxPerAccount != want.MaxPerAccount || c.Plugins.AllowedHosts != nil {
		t.Fatalf("defaults %+v, want %+v", c.Plugins, want)
	}
	c, err = Load(env(EnvDataDir, "/var/lib/bridge", EnvPluginKeepResident, "30s", EnvPluginRefetchAfter, "10m",
		EnvPluginTimeout, "250ms", EnvPluginMaxMemory, "33554432", EnvPluginMaxOutput, "65536", EnvPluginMaxUpload, "4194304",
		EnvPluginMaxPerAccount, "3", EnvPluginAllowedHosts, "api.example.com, *.Example.org"), WithMode(ModeDev))
	if err != nil {
		t.Fatal(err)
	}
	p := c.Plugins
	if p.DataDir != "/var/lib/bridge" || p.KeepResident != 30*time.Second || p.RefetchAfter != 10*time.Minute ||
		p.Timeout != 250*time.Millisecond || p.MaxMemory != 32<<20 || p.MaxOutput != 64<<10 || p.MaxUpload != 4<<20 ||
		p.MaxPerAccount != 3 || !slices.Equal(p.AllowedHosts, []string{"api.example.com", "*.example.org"}) {
		t.Fatalf("settings not read: %+v", p)
	}
}

func TestLoadRejectsBadPluginSettings(t *testing.T) {
	_, err := Load(env(EnvPluginKeepResident, "forever", EnvPluginRefetchAfter, "1ms", EnvPluginTimeout, "0s",
		EnvPluginMaxMemory, "1024", EnvPluginMaxOutput, "lots", EnvPluginMaxUpload, "-1", EnvPluginMaxPerAccount, "0",
		EnvPluginAllowedHosts, "https://evil.example/x"), WithMode(ModeDev))
	verr := validationError(t, err)
	want := []string{EnvPluginKeepResident, EnvPluginRefetchAfter, EnvPluginTimeout, EnvPluginMaxMemory, EnvPluginMaxOutput,
		EnvPluginMaxUpload, EnvPluginMaxPerAccount, EnvPluginAllowedHosts}
	if !slices.Equal(verr.Vars(), want) {
		t.Fatalf("problems for %v, want %v\n%v", verr.Vars(), want, err)
	}
	// A bare * would allow every host.
	_, err = Load(env(EnvPluginAllowedHosts, "*"), WithMode(ModeDev))
	if verr := validationError(t, err); !slices.Equal(verr.Vars(), []string{EnvPluginAllowedHosts}) {
		t.Fatalf("bare glob: %v", err)
	}
}
