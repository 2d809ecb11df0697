package auth

import (
	"bytes"
	"context"
	"testing"
)

// TestNewServiceRefusesZeroValues: a Config field left at zero is an error,
// not a silent default (validation runs before the store is used).
func TestNewServiceRefusesZeroValues(t *testing.T) {
	for name, edit := range map[string]func(*Config){
		"audience":       func(c *Config) { c.Audience = "" },
		"two-factor ttl": func(c *Config) { c.TwoFactorTTL = 0 },
		"confirm ttl":    func(c *Config) { c.ConfirmTokenTTL = 0 },
		"reset ttl":      func(c *Config) { c.ResetTokenTTL = 0 },
		"decode budget":  func(c *Config) { c.AvatarDecodeBudget = 0 },
		"decode wait":    func(c *Config) { c.AvatarDecodeWait = 0 },
	} {
		cfg := DefaultConfig()
		cfg.Issuer, cfg.MasterKey = "https://latchkey.test", bytes.Repeat([]byte{7}, 32)
		edit(&cfg)
		if _, err := NewService(context.Background(), struct{ Store }{}, cfg); err == nil {
			t.Errorf("%s: zero value accepted", name)
		}
	}
}
