package config

import (
	"slices"
	"testing"
	"time"
)

func TestRetentionSettings(t *testing.T) {
	c, err := Load(env(), WithMode(ModeDev))
	if err != nil {
		t.Fatal(err)
	}
	if c.PayloadRetention != 720*time.Hour || c.QuarantineRetention != 168*time.Hour || c.QuarantineMaxRows != 1000 ||
		c.RetentionInterval != 10*time.Minute {
		t.Fatalf("defaults: %v %v %d %v", c.PayloadRetention, c.QuarantineRetention, c.QuarantineMaxRows, c.RetentionInterval)
	}
	c, err = Load(env(EnvPayloadRetention, "48h", EnvQuarantineRetention, "1h", EnvQuarantineMaxRows, "50",
		EnvRetentionInterval, "30s"), WithMode(ModeDev))
	if err != nil {
		t.Fatal(err)
	}
	if c.PayloadRetention != 48*time.Hour || c.QuarantineRetention != time.Hour || c.QuarantineMaxRows != 50 ||
		c.RetentionInterval != 30*time.Second {
		t.Fatalf("settings not read: %v %v %d %v", c.PayloadRetention, c.QuarantineRetention, c.QuarantineMaxRows, c.RetentionInterval)
	}
	_, err = Load(env(EnvPayloadRetention, "30d", EnvQuarantineRetention, "0s", EnvQuarantineMaxRows, "0",
		EnvRetentionInterval, "1ms"), WithMode(ModeDev))
	verr := validationError(t, err)
	for _, name := range []string{EnvPayloadRetention, EnvQuarantineRetention, EnvQuarantineMaxRows, EnvRetentionInterval} {
		if !slices.Contains(verr.Vars(), name) {
			t.Errorf("no problem reported for %s: %v", name, err)
		}
	}
}
