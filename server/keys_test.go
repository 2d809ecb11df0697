package server_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"
)

// kidOf returns the kid header of a JWT.
func kidOf(t *testing.T, token string) string {
	t.Helper()
	head, _, _ := strings.Cut(token, ".")
	raw, err := base64.RawURLEncoding.DecodeString(head)
	if err != nil {
		t.Fatalf("JWT header: %v", err)
	}
	var h struct {
		Kid string `json:"kid"`
	}
	if err := json.Unmarshal(raw, &h); err != nil {
		t.Fatal(err)
	}
	return h.Kid
}

func (h *harness) jwksKids() map[string]bool {
	h.t.Helper()
	r := h.do("GET", "/.well-known/jwks.json", nil)
	h.want(r, http.StatusOK, "")
	var body struct {
		Keys []struct {
			Kid string `json:"kid"`
		} `json:"keys"`
	}
	h.decode(r, &body)
	out := map[string]bool{}
	for _, k := range body.Keys {
		out[k.Kid] = true
	}
	return out
}

// TestKeyRotation: two instances on one database (PostgreSQL when
// configured); one rotates, both verify tokens of either key, the other
// signs with the new key within its check interval, and the old key leaves
// the JWKS once every token it signed has expired.
func TestKeyRotation(t *testing.T) {
	eachDB(t, func(h *harness) {
		svc, first := h.build(nil)
		one := *h
		one.h = first
		two := h.variant(nil)

		a := one.register("Ada")
		oldKid := kidOf(h.t, a.AccessToken)
		if _, err := svc.RotateSigningKey(context.Background()); err != nil {
			h.t.Fatal(err)
		}
		b := one.signIn(a)
		newKid := kidOf(h.t, b.AccessToken)
		if newKid == oldKid {
			h.t.Fatal("the rotating instance still signs with the old key")
		}
		for _, inst := range []*harness{&one, two} {
			inst.wantAccess(a.AccessToken, true)
			inst.wantAccess(b.AccessToken, true)
			if kids := inst.jwksKids(); !kids[oldKid] || !kids[newKid] {
				h.t.Fatalf("JWKS right after rotation: %v", kids)
			}
		}

		// Within a minute the other instance signs with the new key, no
		// restart.
		h.clock.advance(31 * time.Second)
		c := two.signIn(a)
		if kid := kidOf(h.t, c.AccessToken); kid != newKid {
			h.t.Fatalf("second instance signs with %s, want %s", kid, newKid)
		}
		one.wantAccess(c.AccessToken, true)

		// After the access TTL, leeway and the check interval, the old
		// key is gone from both JWKS and verifies nothing.
		h.clock.advance(15*time.Minute + 5*time.Second)
		for _, inst := range []*harness{&one, two} {
			if kids := inst.jwksKids(); kids[oldKid] || !kids[newKid] {
				h.t.Fatalf("JWKS after the grace: %v", kids)
			}
		}
		r := one.refresh(c.RefreshToken)
		one.want(r, http.StatusOK, "")
		var tp tokenPair
		one.decode(r, &tp)
		if kidOf(h.t, tp.AccessToken) != newKid {
			h.t.Fatal("refresh signs with the old key")
		}
		two.wantAccess(tp.AccessToken, true)
	})
}
