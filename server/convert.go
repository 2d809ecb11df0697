package server

import (
	"time"

	"github.com/google/uuid"
	"github.com/oapi-codegen/nullable"
	openapi_types "github.com/oapi-codegen/runtime/types"

	"github.com/latchkey-dev/latchkey/auth"
	"github.com/latchkey-dev/latchkey/gen"
)

const dateLayout = "2006-01-02"

func nullableOf[T, S any](p *S, conv func(S) T) nullable.Nullable[T] {
	if p == nil {
		return nullable.NewNullNullable[T]()
	}
	return nullable.NewNullableWithValue(conv(*p))
}

func same[T any](v T) T { return v }

// toFieldErrors is the API form of the rules a request broke.
func toFieldErrors(fields []auth.FieldError) []gen.FieldError {
	if fields == nil {
		return nil
	}
	out := make([]gen.FieldError, len(fields))
	for i, f := range fields {
		out[i] = gen.FieldError{Field: f.Field, Message: f.Message}
	}
	return out
}

// toUser is the public view of a user: never a credential.
func toUser(u *auth.User) gen.User {
	return gen.User{
		ID:               uuid.MustParse(u.ID),
		AccountType:      gen.AccountType(u.AccountType),
		Name:             u.Name,
		Username:         nullableOf(u.Username, same[string]),
		Email:            nullableOf(u.Email, func(s string) openapi_types.Email { return openapi_types.Email(s) }),
		EmailConfirmed:   u.EmailConfirmed,
		Bio:              nullableOf(u.Bio, same[string]),
		Locale:           gen.Locale(u.Locale),
		Timezone:         gen.Timezone(u.Timezone),
		Location:         nullableOf(u.Location, same[string]),
		BirthDate:        nullableOf(u.BirthDate, toDate),
		HasAvatar:        u.HasAvatar,
		TwoFactorEnabled: u.TwoFactorEnabled,
		Admin:            u.Admin,
		CreatedAt:        u.CreatedAt.UTC(),
	}
}

func toDate(s string) openapi_types.Date {
	t, _ := time.Parse(dateLayout, s) // the domain only stores valid dates
	return openapi_types.Date{Time: t}
}

func toTokenPair(t *auth.Tokens) gen.TokenPair {
	return gen.TokenPair{
		AccessToken:      t.AccessToken,
		TokenType:        gen.TokenTypeBearer,
		ExpiresIn:        t.ExpiresIn,
		RefreshToken:     t.RefreshToken,
		RefreshExpiresIn: t.RefreshExpiresIn,
		SessionID:        uuid.MustParse(t.SessionID),
	}
}

func toAuthResult(r *auth.AuthResult) gen.AuthResult {
	if r.Tokens == nil {
		return gen.AuthResult{
			TwoFactorRequired: true,
			TwoFactorToken:    &r.TwoFactorToken,
			ExpiresIn:         &r.TwoFactorExpiresIn,
		}
	}
	tp := toTokenPair(r.Tokens)
	return gen.AuthResult{
		TwoFactorRequired: false,
		AccessToken:       &tp.AccessToken,
		TokenType:         &tp.TokenType,
		ExpiresIn:         &tp.ExpiresIn,
		RefreshToken:      &tp.RefreshToken,
		RefreshExpiresIn:  &tp.RefreshExpiresIn,
		SessionID:         &tp.SessionID,
	}
}

func toSession(s *auth.Session, currentID string) gen.Session {
	optional := func(v string) nullable.Nullable[string] {
		if v == "" {
			return nullable.NewNullNullable[string]()
		}
		return nullable.NewNullableWithValue(v)
	}
	return gen.Session{
		ID:        uuid.MustParse(s.ID),
		CreatedAt: s.CreatedAt.UTC(),
		LastUsed:  s.LastUsed.UTC(),
		ExpiresAt: s.ExpiresAt.UTC(),
		UserAgent: optional(s.UserAgent),
		IP:        optional(s.IP),
		Current:   s.ID == currentID,
	}
}

// patchField turns a PATCH member (absent, null, or a value) into the
// domain's tri-state field.
func patchField(n nullable.Nullable[string]) auth.Field[string] {
	if !n.IsSpecified() {
		return auth.Field[string]{}
	}
	if n.IsNull() {
		return auth.Field[string]{Set: true}
	}
	v, _ := n.Get()
	return auth.Field[string]{Set: true, Value: &v}
}

func patchDate(n nullable.Nullable[openapi_types.Date]) auth.Field[string] {
	if !n.IsSpecified() {
		return auth.Field[string]{}
	}
	if n.IsNull() {
		return auth.Field[string]{Set: true}
	}
	d, _ := n.Get()
	v := d.Format(dateLayout)
	return auth.Field[string]{Set: true, Value: &v}
}
