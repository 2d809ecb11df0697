package password

import (
	"errors"
	"strings"
	"testing"
)

func TestNormalize(t *testing.T) {
	tests := []struct{ name, a, b string }{
		{"é composed and decomposed", "\u00e9", "e\u0301"},
		{"Å: ring above and angstrom sign", "\u00c5", "\u212b"},
		{"ệ: two marks in either order", "\u1ec7", "e\u0323\u0302"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if na, nb := Normalize(tt.a), Normalize(tt.b); na != nb {
				t.Errorf("Normalize(%+q) = %+q, Normalize(%+q) = %+q; want equal", tt.a, na, tt.b, nb)
			}
		})
	}
	if got := Normalize("e\u0301"); got != "\u00e9" {
		t.Errorf("Normalize(decomposed é) = %+q, want the composed form", got)
	}
	long := strings.Repeat("e\u0301", 200)
	if got := Normalize(long); got != strings.Repeat("\u00e9", 200) {
		t.Errorf("Normalize of 200 é = %d bytes, want all 200 kept", len(got))
	}
}

func TestCheck(t *testing.T) {
	const ok = ""
	tests := []struct {
		name, password, email, username string
		rule                            string // "" when the password passes
	}{
		// length, in characters after NFC
		{"7 characters", "tr0ub4d", "", "", RuleLength},
		{"8 characters", "tr0ub4d&", "", "", ok},
		{"empty", "", "", "", RuleLength},
		{"128 characters", strings.Repeat("tr0ub4d&", 16), "", "", ok},
		{"129 characters", strings.Repeat("tr0ub4d&", 16) + "x", "", "", RuleLength},
		{"8 × composed é", strings.Repeat("\u00e9", 8), "", "", ok},
		{"8 × decomposed é (16 code points)", strings.Repeat("e\u0301", 8), "", "", ok},
		{"7 × decomposed é (14 code points)", strings.Repeat("e\u0301", 7), "", "", RuleLength},
		{"128 × decomposed é (256 code points)", strings.Repeat("e\u0301", 128), "", "", ok},
		{"8 emoji (32 bytes)", strings.Repeat("🔑", 8), "", "", ok},
		{"7 emoji (28 bytes)", strings.Repeat("🔑", 7), "", "", RuleLength},

		// common passwords, ignoring case
		{"password1", "password1", "", "", RuleCommon},
		{"Password1", "Password1", "", "", RuleCommon},
		{"PASSWORD1", "PASSWORD1", "", "", RuleCommon},
		{"iloveyou", "iloveyou", "", "", RuleCommon},
		{"12345678", "12345678", "", "", RuleCommon},
		{"uncommon", "password1 but longer", "", "", ok},

		// context: the email's local part or the username, ignoring case
		{"contains local part", "xxJohnDoe99", "johndoe@example.com", "", RuleContext},
		{"equals local part", "JohnDoe1979", "johndoe1979@example.com", "", RuleContext},
		{"contains local part in upper case", "my-name-is-johndoe", "JohnDoe@Example.com", "", RuleContext},
		{"contains a non-ASCII local part", "JÜRGEN-2024!", "jürgen@example.com", "", RuleContext},
		{"contains the whole email", "johndoe@example.com", "johndoe@example.com", "", RuleContext},
		{"domain only", "example-rocks-42", "johndoe@example.com", "", ok},
		{"equals username", "Alice_Smith", "", "alice_smith", RuleContext},
		{"contains username", "i.am.alice_smith!", "someone@example.com", "ALICE_SMITH", RuleContext},
		{"one-letter local part", "abcdefgh", "a@example.com", "", ok},
		{"two-letter username", "abcdefgh", "", "ab", ok},
		{"three-letter username", "xxabcxxx", "", "abc", RuleContext},
		{"empty email and username", "tr0ub4d&", "", "", ok},
		{"email without @", "my-johndoe-pw", "johndoe", "", RuleContext},
		{"empty local part", "tr0ub4d&", "@example.com", "", ok},
		{"unrelated", "correct horse battery staple", "johndoe@example.com", "jdoe", ok},

		// order: length before common before context
		{"short and contains username", "bob1", "", "bob", RuleLength},
		{"common and equals username", "iloveyou", "", "iloveyou", RuleCommon},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Check(tt.password, tt.email, tt.username)
			if tt.rule == ok {
				if err != nil {
					t.Errorf("Check(%q, %q, %q) = %v, want nil", tt.password, tt.email, tt.username, err)
				}
				return
			}
			var w *Weakness
			if !errors.As(err, &w) {
				t.Fatalf("Check(%q, %q, %q) = %v, want a *Weakness", tt.password, tt.email, tt.username, err)
			}
			if w.Rule != tt.rule || w.Message == "" || err.Error() != w.Message {
				t.Errorf("Check(%q, %q, %q) = %+v, want rule %q with a message", tt.password, tt.email, tt.username, w, tt.rule)
			}
		})
	}
}

func TestIsCommon(t *testing.T) {
	tests := []struct {
		password string
		want     bool
	}{
		{"123456", true},      // first entry
		{"qqqqqq1", true},     // last of the 10,000
		{"password", true},    // lower-case
		{"PassWord", true},    // any case
		{"TRUSTNO1", true},    // any case
		{"password1!", false}, // a variant, not an entry
		{"", false},           // empty lines do not count
		{"xo7#Lq9!vR", false}, // not common
		{"ａｂｃ１２３", false},     // full-width: NFC keeps it distinct
	}
	for _, tt := range tests {
		if got := IsCommon(tt.password); got != tt.want {
			t.Errorf("IsCommon(%q) = %v, want %v", tt.password, got, tt.want)
		}
	}
	if n := len(commonPasswords()); n != 10000 {
		t.Errorf("common list holds %d passwords, want 10000", n)
	}
}

func BenchmarkCheck(b *testing.B) {
	commonPasswords() // load the list outside the timed loop
	b.ReportAllocs()
	for b.Loop() {
		if err := Check("correct horse battery staple", "johndoe@example.com", "jdoe"); err != nil {
			b.Fatal(err)
		}
	}
}
