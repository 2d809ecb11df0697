package auth

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"testing"
)

func TestSealerPurposesCannotBeSwapped(t *testing.T) {
	key := bytes.Repeat([]byte{1}, 32)
	c, err := newSealer(key, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	plain := []byte("the plaintext")
	sealed, err := c.seal(purposeAccountSecret, "u1", plain)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, plain) {
		t.Fatal("plaintext visible in sealed value")
	}
	if got, err := c.open(purposeAccountSecret, "u1", sealed); err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("open = %q, %v", got, err)
	}
	again, _ := c.seal(purposeAccountSecret, "u1", plain)
	if bytes.Equal(again, sealed) {
		t.Error("two seals of one value are equal: nonce not random")
	}

	other, _ := newSealer(bytes.Repeat([]byte{2}, 32), rand.Reader)
	tampered := bytes.Clone(sealed)
	tampered[len(tampered)-1] ^= 1
	tests := []struct {
		name           string
		c              *sealer
		purpose, owner string
		sealed         []byte
	}{
		{"as signing key", c, purposeSigningKey, "u1", sealed},
		{"as refresh successor", c, purposeRefreshSuccessor, "u1", sealed},
		{"for another owner", c, purposeAccountSecret, "u2", sealed},
		{"under another master key", other, purposeAccountSecret, "u1", sealed},
		{"tampered", c, purposeAccountSecret, "u1", tampered},
		{"truncated", c, purposeAccountSecret, "u1", sealed[:10]},
		{"empty", c, purposeAccountSecret, "u1", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got, err := tt.c.open(tt.purpose, tt.owner, tt.sealed); err == nil {
				t.Errorf("opened: %q", got)
			}
		})
	}
}

func TestTokenHashIsTyped(t *testing.T) {
	tok, err := newToken(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	kinds := []string{kindSecret, kindRefresh, "confirm", "reset", "two-factor"}
	seen := map[string]string{}
	for _, k := range kinds {
		h := tokenHash(k, tok)
		want := sha256.Sum256([]byte(k + ":" + tok))
		if !bytes.Equal(h, want[:]) {
			t.Errorf("tokenHash(%s) is not SHA-256 of kind:token", k)
		}
		if prev, ok := seen[string(h)]; ok {
			t.Errorf("kinds %s and %s hash alike", prev, k)
		}
		seen[string(h)] = k
	}
	if !hashEqual(tokenHash(kindSecret, tok), tokenHash(kindSecret, tok)) ||
		hashEqual(tokenHash(kindSecret, tok), tokenHash(kindRefresh, tok)) {
		t.Error("hashEqual is wrong")
	}
}

func TestNewToken(t *testing.T) {
	a, _ := newToken(rand.Reader)
	b, _ := newToken(rand.Reader)
	if a == b {
		t.Error("two tokens are equal")
	}
	raw, err := base64.RawURLEncoding.DecodeString(a)
	if err != nil || len(raw) != 32 || len(a) != 43 {
		t.Errorf("token %q is not 256 bits of unpadded base64url", a)
	}
	if _, err := newToken(bytes.NewReader(make([]byte, 8))); err == nil {
		t.Error("a short random source went unnoticed")
	}
}
