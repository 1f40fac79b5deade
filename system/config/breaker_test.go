package config

import (
	"slices"
	"testing"
	"time"
)

func TestBreakerSettings(t *testing.T) {
	c, err := Load(env(), WithMode(ModeDev))
	if err != nil {
		t.Fatal(err)
	}
	if c.BreakerOpenAfter != 5 || c.BreakerProbeMin != 5*time.Second || c.BreakerProbeMax != 5*time.Minute ||
		c.BreakerDisableAfter != 120*time.Hour {
		t.Fatalf("defaults: %d %v %v %v", c.BreakerOpenAfter, c.BreakerProbeMin, c.BreakerProbeMax, c.BreakerDisableAfter)
	}
	c, err = Load(env(EnvBreakerOpenAfter, "10", EnvBreakerProbeMin, "1s", EnvBreakerProbeMax, "1m",
		EnvBreakerDisableAfter, "24h"), WithMode(ModeDev))
	if err != nil {
		t.Fatal(err)
	}
	if c.BreakerOpenAfter != 10 || c.BreakerProbeMin != time.Second || c.BreakerProbeMax != time.Minute ||
		c.BreakerDisableAfter != 24*time.Hour {
		t.Fatalf("settings not read: %d %v %v %v", c.BreakerOpenAfter, c.BreakerProbeMin, c.BreakerProbeMax, c.BreakerDisableAfter)
	}
	_, err = Load(env(EnvBreakerOpenAfter, "0", EnvBreakerProbeMin, "soon", EnvBreakerDisableAfter, "5d"), WithMode(ModeDev))
	verr := validationError(t, err)
	for _, name := range []string{EnvBreakerOpenAfter, EnvBreakerProbeMin, EnvBreakerDisableAfter} {
		if !slices.Contains(verr.Vars(), name) {
			t.Errorf("no problem reported for %s: %v", name, err)
		}
	}
	// A cap below the first wait names the cap.
	_, err = Load(env(EnvBreakerProbeMin, "10s", EnvBreakerProbeMax, "1s"), WithMode(ModeDev))
	verr = validationError(t, err)
	if !slices.Equal(verr.Vars(), []string{EnvBreakerProbeMax}) {
		t.Fatalf("problems %v, want only %s: %v", verr.Vars(), EnvBreakerProbeMax, err)
	}
}
