package auth

import (
	"bytes"
	"context"
	"errors"
	"image"
	"image/color"
	"image/png"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/latchkey-dev/latchkey/auth/avatar"
)

func ptr[T any](v T) *T { return &v }

func set(v string) Field[string] { return Field[string]{Set: true, Value: &v} }

var null = Field[string]{Set: true}

func TestUpdateMeValidation(t *testing.T) {
	// The clock is 2030-01-02 02:04 UTC: already 2030-01-02 in UTC+14.
	tests := []struct {
		name   string
		patch  UserPatch
		fields []string
	}{
		{"empty name", UserPatch{Name: ptr("  ")}, []string{"name"}},
		{"long name", UserPatch{Name: ptr(strings.Repeat("a", 65))}, []string{"name"}},
		{"control in name", UserPatch{Name: ptr("a\tb")}, []string{"name"}},
		{"short username", UserPatch{Username: set("ab")}, []string{"username"}},
		{"long username", UserPatch{Username: set(strings.Repeat("a", 31))}, []string{"username"}},
		{"username with space", UserPatch{Username: set("ada l")}, []string{"username"}},
		{"username with @", UserPatch{Username: set("ada@x")}, []string{"username"}},
		{"empty username", UserPatch{Username: set("")}, []string{"username"}},
		{"long bio", UserPatch{Bio: set(strings.Repeat("é", 501))}, []string{"bio"}},
		{"control in bio", UserPatch{Bio: set("a\x07b")}, []string{"bio"}},
		{"long location", UserPatch{Location: set(strings.Repeat("é", 101))}, []string{"location"}},
		{"newline in location", UserPatch{Location: set("a\nb")}, []string{"location"}},
		{"bad locale", UserPatch{Locale: ptr("english please")}, []string{"locale"}},
		{"empty locale", UserPatch{Locale: ptr("")}, []string{"locale"}},
		{"bad timezone", UserPatch{Timezone: ptr("Mars/Olympus")}, []string{"timezone"}},
		{"empty timezone", UserPatch{Timezone: ptr("")}, []string{"timezone"}},
		{"Local timezone", UserPatch{Timezone: ptr("Local")}, []string{"timezone"}},
		{"path timezone", UserPatch{Timezone: ptr("../../etc/passwd")}, []string{"timezone"}},
		{"not a date", UserPatch{BirthDate: set("yesterday")}, []string{"birth_date"}},
		{"31 February", UserPatch{BirthDate: set("2000-02-31")}, []string{"birth_date"}},
		{"one-digit month", UserPatch{BirthDate: set("2000-1-05")}, []string{"birth_date"}},
		{"with time", UserPatch{BirthDate: set("2000-01-05T00:00:00Z")}, []string{"birth_date"}},
		{"before 1900", UserPatch{BirthDate: set("1899-12-31")}, []string{"birth_date"}},
		{"tomorrow everywhere", UserPatch{BirthDate: set("2030-01-03")}, []string{"birth_date"}},
		{"all at once", UserPatch{
			Name: ptr(""), Username: set("x"), Bio: set(strings.Repeat("b", 501)),
			Location: set(strings.Repeat("l", 101)), BirthDate: set("1800-01-01"),
			Locale: ptr("!"), Timezone: ptr("Nowhere"),
		}, []string{"name", "username", "bio", "location", "birth_date", "locale", "timezone"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, st, _ := newTestService(t)
			u, _, _ := register(t, s, "Ada")
			_, err := s.UpdateMe(context.Background(), u.ID, tt.patch)
			if got := fieldsOf(t, err); !slices.Equal(got, tt.fields) {
				t.Errorf("fields = %v, want %v", got, tt.fields)
			}
			if stored, _ := st.UserByID(context.Background(), u.ID); stored.Name != "Ada" || !stored.UpdatedAt.Equal(u.UpdatedAt) {
				t.Error("invalid patch changed the user")
			}
		})
	}
}

func TestUpdateMe(t *testing.T) {
	ctx := context.Background()
	s, st, clk := newTestService(t)
	u, _, _ := register(t, s, "Ada")
	clk.advance(time.Minute)

	got, err := s.UpdateMe(ctx, u.ID, UserPatch{
		Name:      ptr(" Ada L. "),
		Username:  set("Ada.L_1-x"),
		Bio:       set(" line one\r\nline\ttwo "),
		Location:  set(" London "),
		BirthDate: set("2030-01-02"), // today in UTC+14
		Locale:    ptr("fr-ch"),
		Timezone:  ptr("Europe/Zurich"),
	})
	if err != nil {
		t.Fatal(err)
	}
	if got.Name != "Ada L." || *got.Username != "Ada.L_1-x" || *got.Bio != "line one\r\nline\ttwo" ||
		*got.Location != "London" || *got.BirthDate != "2030-01-02" || got.Locale != "fr-CH" ||
		got.Timezone != "Europe/Zurich" || !got.UpdatedAt.Equal(s.now()) {
		t.Errorf("user = %+v", got)
	}
	stored, _ := st.UserByID(ctx, u.ID)
	if stored.Name != "Ada L." || stored.Locale != "fr-CH" {
		t.Errorf("stored = %+v", stored)
	}

	// Unset fields are kept; null and empty clear the optional ones.
	got, err = s.UpdateMe(ctx, u.ID, UserPatch{Username: null, Bio: null, Location: set("  ")})
	if err != nil {
		t.Fatal(err)
	}
	if got.Username != nil || got.Bio != nil || got.Location != nil || got.BirthDate == nil ||
		got.Name != "Ada L." || got.Timezone != "Europe/Zurich" {
		t.Errorf("after clearing: %+v", got)
	}

	for _, d := range []string{"1900-01-01", "2000-02-29"} {
		if _, err := s.UpdateMe(ctx, u.ID, UserPatch{BirthDate: set(d)}); err != nil {
			t.Errorf("birth date %s: %v", d, err)
		}
	}
	if _, err := s.UpdateMe(ctx, u.ID, UserPatch{Timezone: ptr("UTC")}); err != nil {
		t.Errorf("timezone UTC: %v", err)
	}
}

func TestUpdateMeUsernameTaken(t *testing.T) {
	ctx := context.Background()
	s, _, _ := newTestService(t)
	a, _, _ := register(t, s, "Ada")
	b, _, _ := register(t, s, "Bob")
	if _, err := s.UpdateMe(ctx, a.ID, UserPatch{Username: set("Shared")}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.UpdateMe(ctx, b.ID, UserPatch{Username: set("shared")}); !errors.Is(err, ErrUsernameTaken) {
		t.Errorf("err = %v, want ErrUsernameTaken", err)
	}
	if _, err := s.UpdateMe(ctx, a.ID, UserPatch{Username: set("SHARED")}); err != nil {
		t.Errorf("changing the case of one's own username: %v", err)
	}
}

func pngBytes(t *testing.T, w, h int) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	img.Set(0, 0, color.RGBA{R: 255, A: 255})
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestAvatar(t *testing.T) {
	ctx := context.Background()
	s, _, _ := newTestService(t)
	u, _, _ := register(t, s, "Ada")

	if _, err := s.Avatar(ctx, u.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("Avatar before upload = %v, want ErrNotFound", err)
	}
	if err := s.DeleteAvatar(ctx, u.ID); err != nil {
		t.Errorf("DeleteAvatar without one = %v", err)
	}

	img := pngBytes(t, 8, 8)
	if err := s.SetAvatar(ctx, u.ID, img); err != nil {
		t.Fatal(err)
	}
	a, err := s.Avatar(ctx, u.ID)
	if err != nil {
		t.Fatal(err)
	}
	if a.ContentType != "image/png" || len(a.Data) == 0 || !a.UpdatedAt.Equal(s.now()) {
		t.Errorf("avatar = %s, %d bytes, %v", a.ContentType, len(a.Data), a.UpdatedAt)
	}
	if !regexp.MustCompile(`^"[0-9a-f]{32}"$`).MatchString(a.ETag) {
		t.Errorf("ETag = %s", a.ETag)
	}
	if me, _ := s.Me(ctx, u.ID); !me.HasAvatar {
		t.Error("HasAvatar not set")
	}

	other := pngBytes(t, 9, 9)
	if err := s.SetAvatar(ctx, u.ID, other); err != nil {
		t.Fatal(err)
	}
	if b, _ := s.Avatar(ctx, u.ID); b.ETag == a.ETag {
		t.Error("another image kept the ETag")
	}

	tests := []struct {
		name string
		data []byte
		want error
		lib  error
	}{
		{"text", []byte("hello, world"), ErrUnsupportedImage, avatar.ErrUnsupported},
		{"empty", nil, ErrUnsupportedImage, avatar.ErrUnsupported},
		{"truncated PNG", img[:40], ErrInvalidImage, avatar.ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := s.SetAvatar(ctx, u.ID, tt.data)
			if !errors.Is(err, tt.want) || !errors.Is(err, tt.lib) {
				t.Errorf("SetAvatar = %v, want %v wrapping %v", err, tt.want, tt.lib)
			}
		})
	}

	if err := s.DeleteAvatar(ctx, u.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Avatar(ctx, u.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("Avatar after delete = %v", err)
	}
	if me, _ := s.Me(ctx, u.ID); me.HasAvatar {
		t.Error("HasAvatar still set")
	}
}

func TestBirthDateTodayAnywhere(t *testing.T) {
	// At 12:00 UTC on 1 January it is already 2 January in UTC+14.
	now := time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		date string
		ok   bool
	}{
		{"2030-01-01", true},
		{"2030-01-02", true},
		{"2030-01-03", false},
		{"1900-01-01", true},
		{"1899-12-31", false},
	}
	for _, tt := range tests {
		var v validator
		v.birthDate("birth_date", tt.date, now)
		if ok := v.err() == nil; ok != tt.ok {
			t.Errorf("birth date %s accepted = %v, want %v", tt.date, ok, tt.ok)
		}
	}
}

// TestAvatarBudget: uploads are admitted against a memory budget of their
// estimated decode cost, not a count: beyond it they wait, then get
// ErrOverloaded, and freed room serves the next one.
func TestAvatarBudget(t *testing.T) {
	ctx := context.Background()
	img := pngBytes(t, 8, 8)
	cost, err := avatar.DecodeCost(img)
	if err != nil {
		t.Fatal(err)
	}
	s, _, _ := newTestService(t, func(c *Config) {
		c.AvatarDecodeBudget = 3 * cost
		c.AvatarDecodeWait = 10 * time.Millisecond
	})
	u, _, _ := register(t, s, "Ada")

	held, err := s.imageBudget.acquire(ctx, 2*cost+1, 0) // room for less than one more
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SetAvatar(ctx, u.ID, img); !errors.Is(err, ErrOverloaded) {
		t.Fatalf("SetAvatar over the budget = %v, want ErrOverloaded", err)
	}
	if me, _ := s.Me(ctx, u.ID); me.HasAvatar {
		t.Error("an overloaded upload was stored")
	}
	// Room freed while an upload waits admits it.
	s.cfg.AvatarDecodeWait = 5 * time.Second
	go func() { time.Sleep(20 * time.Millisecond); held() }()
	if err := s.SetAvatar(ctx, u.ID, img); err != nil {
		t.Fatalf("SetAvatar once room was freed = %v", err)
	}
	// Many small decodes fit where one large one did: a budget, not a count.
	var releases []func()
	for range 3 {
		r, err := s.imageBudget.acquire(ctx, cost, 0)
		if err != nil {
			t.Fatalf("three decodes of cost %d in a budget of %d: %v", cost, 3*cost, err)
		}
		releases = append(releases, r)
	}
	if _, err := s.imageBudget.acquire(ctx, 1, time.Millisecond); !errors.Is(err, ErrOverloaded) {
		t.Errorf("a fourth decode in a full budget = %v, want ErrOverloaded", err)
	}
	for _, r := range releases {
		r()
		r() // a second release gives nothing back twice
	}
	// A cost over the whole budget is admitted alone, and only alone.
	big, err := s.imageBudget.acquire(ctx, 100*cost, 0)
	if err != nil {
		t.Fatalf("a decode larger than the budget, alone: %v", err)
	}
	if _, err := s.imageBudget.acquire(ctx, 1, time.Millisecond); !errors.Is(err, ErrOverloaded) {
		t.Errorf("beside a decode larger than the budget = %v, want ErrOverloaded", err)
	}
	big()
	if s.imageBudget.used != 0 {
		t.Errorf("budget used = %d after every release, want 0", s.imageBudget.used)
	}
}
