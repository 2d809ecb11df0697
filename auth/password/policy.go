package password

import (
	_ "embed"
	"strings"
	"sync"
	"unicode/utf8"

	"golang.org/x/text/cases"
	"golang.org/x/text/unicode/norm"
)

// Bounds on a password's length, in characters (runes) after NFC
// normalisation.
const MinLength, MaxLength = 8, 128

// minContextLen is the shortest email local part or username that a
// password may not contain; shorter ones may only not be the password.
const minContextLen = 3

// The rules a Weakness names.
const (
	RuleLength  = "length"
	RuleCommon  = "common"
	RuleContext = "context"
)

// Weakness says which rule a password breaks. Rule is RuleLength,
// RuleCommon or RuleContext; Message says it in English, for the user.
type Weakness struct{ Rule, Message string }

func (w *Weakness) Error() string { return w.Message }

// Normalize returns password in Unicode NFC, so that the same characters
// typed on different systems hash alike. It never truncates.
func Normalize(password string) string {
	return norm.NFC.String(password)
}

// Check returns nil or a *Weakness: the password is shorter than MinLength
// or longer than MaxLength characters (after NFC); it is among the 10,000
// most common passwords (ignoring case); or it equals or contains the email's
// local part or the username, ignoring case. The "contains" test applies
// only to a part of 3 or more characters, so a one-letter local part does not
// ban every password containing that letter; "equals" always applies. email
// and username may be empty. There are no composition rules.
func Check(password, email, username string) error {
	password = Normalize(password)
	if n := utf8.RuneCountInString(password); n < MinLength || n > MaxLength {
		return &Weakness{Rule: RuleLength, Message: "must be 8 to 128 characters long"}
	}
	folded := fold(password)
	if _, ok := commonPasswords()[folded]; ok {
		return &Weakness{Rule: RuleCommon, Message: "is one of the most common passwords"}
	}
	for _, part := range []string{localPart(email), username} {
		part = fold(Normalize(part))
		if part == "" {
			continue
		}
		if folded == part || (utf8.RuneCountInString(part) >= minContextLen && strings.Contains(folded, part)) {
			return &Weakness{Rule: RuleContext, Message: "must not contain the email address or username"}
		}
	}
	return nil
}

// IsCommon reports whether password (NFC-normalised, ignoring case) is among
// the 10,000 most common passwords.
func IsCommon(password string) bool {
	_, ok := commonPasswords()[fold(Normalize(password))]
	return ok
}

// localPart returns what precedes the last '@' of email, or all of it.
func localPart(email string) string {
	if i := strings.LastIndexByte(email, '@'); i >= 0 {
		return email[:i]
	}
	return email
}

// fold returns s case-folded, for comparisons that ignore case. A Caser
// holds state, so each call makes its own.
func fold(s string) string {
	return cases.Fold().String(s)
}

// commonPasswordsText is the list, one lower-case password a line, most
// common first; see common-passwords.md for its source and licence.
//
//go:embed common-passwords.txt
var commonPasswordsText string

// commonPasswords is the list as a set, built on first use.
var commonPasswords = sync.OnceValue(func() map[string]struct{} {
	set := make(map[string]struct{}, 10000)
	for line := range strings.Lines(commonPasswordsText) {
		if p := strings.TrimRight(line, "\r\n"); p != "" {
			set[fold(p)] = struct{}{}
		}
	}
	return set
})
