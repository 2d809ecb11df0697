package auth

import "context"

// Field is an optional, nullable patch field: Set says it was given;
// Set with a nil Value clears it.
type Field[T any] struct {
	Set   bool
	Value *T
}

// UserPatch is a change to a user's profile; nil or unset fields are kept.
type UserPatch struct {
	Name      *string
	Username  Field[string]
	Bio       Field[string]
	Location  Field[string]
	BirthDate Field[string] // YYYY-MM-DD
	Locale    *string       // BCP 47
	Timezone  *string       // IANA
}

// Me returns the user.
func (s *Service) Me(ctx context.Context, userID string) (*User, error) {
	return s.st.UserByID(ctx, userID)
}

// UpdateMe applies a patch to the user's profile. Every broken rule is
// reported in one ValidationError; a taken username is ErrUsernameTaken.
// Bio and location are trimmed, and empty clears them.
func (s *Service) UpdateMe(ctx context.Context, userID string, p UserPatch) (*User, error) {
	now := s.now()
	var v validator
	if p.Name != nil {
		p.Name = new(v.name("name", *p.Name))
	}
	checkOptional(&p.Username, func(x string) *string { return v.username("username", x) })
	checkOptional(&p.Bio, func(x string) *string { return v.text("bio", x, maxBio, true) })
	checkOptional(&p.Location, func(x string) *string { return v.text("location", x, maxLocation, false) })
	checkOptional(&p.BirthDate, func(x string) *string { return v.birthDate("birth_date", x, now) })
	if p.Locale != nil {
		p.Locale = new(v.locale("locale", *p.Locale))
	}
	if p.Timezone != nil {
		p.Timezone = new(v.timezone("timezone", *p.Timezone))
	}
	if err := v.err(); err != nil {
		return nil, err
	}
	// Only the fields given are written: a concurrent change of any other
	// column (a password reset, another field's edit) stands.
	return s.st.UpdateProfile(ctx, userID, p, now)
}

// checkOptional replaces a field's value by what check makes of it; unset
// and null are kept as they are.
func checkOptional(f *Field[string], check func(string) *string) {
	if f.Set && f.Value != nil {
		f.Value = check(*f.Value)
	}
}
