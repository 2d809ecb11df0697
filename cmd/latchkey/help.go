package main

import (
	"fmt"
	"io"
	"sort"
	"strings"
)

// commands are the subcommands `latchkey help` lists, in this order.
var commands = []struct{ name, usage string }{
	{"serve", "run the service (the default when no command is given)"},
	{"migrate", "apply the database schema and exit"},
	{"version", "print the version (also --version)"},
	{"admin grant <email|username|id>", "make an account an admin (on the configured database)"},
	{"admin revoke <email|username|id>", "take the admin flag away (never from the last enabled admin)"},
	{"keys rotate", "make a new signing key current; the old one verifies until its tokens expire"},
	{"keys list", "show the signing keys and their state"},
	{"help", "print this help (also --help, -h)"},
}

// settingGroups puts each setting under a heading of the help. A setting
// missing here is still listed, under "Other settings".
var settingGroups = []struct {
	title    string
	settings []string
}{
	{"Service", []string{"addr", "public-url", "trusted-proxies", "cors-origins", "metrics-addr", "debug-addr", "log-format", "log-level"}},
	{"Storage", []string{"data-dir", "database-url", "database-max-conns", "master-key", "redis-url"}},
	{"Accounts and tokens", []string{"registration", "email-confirmation", "jwt-audience", "access-token-ttl",
		"refresh-token-ttl", "refresh-reuse-grace", "two-factor-ttl", "event-retention"}},
	{"Mail", []string{"smtp-url", "mail-from", "confirm-path", "reset-path", "confirm-token-ttl", "reset-token-ttl"}},
	{"Limits and password hashing", []string{"avatar-max-bytes", "avatar-decode-budget", "rate-limits", "login-max-failures", "login-window", "registration-limit",
		"hash-concurrency", "argon2-memory", "argon2-iterations", "argon2-parallelism"}},
}

// printHelp writes the usage: the commands, then every setting of the
// table, grouped.
func printHelp(w io.Writer) {
	fmt.Fprintf(w, "Latchkey %s: accounts and sign-in for your application.\n\n", buildVersion())
	fmt.Fprintln(w, "Usage: latchkey [command] [--setting value ...]")
	fmt.Fprintln(w, "\nCommands:")
	width := 0
	for _, c := range commands {
		width = max(width, len(c.name))
	}
	for _, c := range commands {
		fmt.Fprintf(w, "  %-*s  %s\n", width, c.name, c.usage)
	}
	fmt.Fprintln(w, "\nSettings: each is an environment variable and the same-named flag (flags win),")
	fmt.Fprintln(w, "e.g. LATCHKEY_ADDR=:9090 or --addr :9090.")

	grouped := map[string]bool{}
	byName := map[string]setting{}
	all := settingsOf(&config{})
	for _, s := range all {
		byName[s.name] = s
	}
	for _, g := range settingGroups {
		var list []setting
		for _, name := range g.settings {
			if s, ok := byName[name]; ok {
				list = append(list, s)
				grouped[name] = true
			}
		}
		printSettings(w, g.title, list)
	}
	var other []setting
	for _, s := range all {
		if !grouped[s.name] {
			other = append(other, s)
		}
	}
	printSettings(w, "Other settings", other)
}

func printSettings(w io.Writer, title string, list []setting) {
	if len(list) == 0 {
		return
	}
	fmt.Fprintf(w, "\n%s:\n", title)
	for _, s := range list {
		def := ""
		if s.def != "" {
			def = fmt.Sprintf(" (default %s)", s.def)
		}
		fmt.Fprintf(w, "  %s, --%s%s\n      %s\n", s.env(), s.name, def, s.usage)
	}
}

// unknownVariables answers the LATCHKEY_* names in environ (KEY=value
// entries) that are no setting, each with the closest setting's name when
// one is near (a typo). LATCHKEY_TEST_* belong to the test suites.
func unknownVariables(environ []string) []string {
	known := map[string]bool{}
	var names []string
	for _, s := range settingsOf(&config{}) {
		known[s.env()] = true
		names = append(names, s.env())
	}
	var out []string
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(name, "LATCHKEY_") || strings.HasPrefix(name, "LATCHKEY_TEST_") || known[name] {
			continue
		}
		msg := name + " is not a Latchkey setting and is ignored"
		if near := closest(name, names); near != "" {
			msg += "; did you mean " + near + "?"
		}
		out = append(out, msg)
	}
	sort.Strings(out)
	return out
}

// closest answers the name in names within a few edits of s, if any.
func closest(s string, names []string) string {
	best, bestD := "", 4
	for _, n := range names {
		if d := editDistance(s, n); d < bestD {
			best, bestD = n, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance of a and b (ASCII names).
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
