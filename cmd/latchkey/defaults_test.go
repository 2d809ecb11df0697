package main

import (
	"os"
	"regexp"
	"testing"
)

// TestREADMEDefaultsMatchSettings: every row of the README's configuration
// table whose default is one literal (`15m`) states the settings table's
// default, which comes from the packages' own Default* values.
func TestREADMEDefaultsMatchSettings(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	row := regexp.MustCompile("(?m)^\\| `(LATCHKEY_[A-Z0-9_]+)` \\| `([^`]*)` \\|")
	defs := map[string]string{}
	for _, s := range settingsOf(&config{}) {
		defs[s.env()] = s.def
	}
	checked := 0
	for _, m := range row.FindAllStringSubmatch(string(readme), -1) {
		def, ok := defs[m[1]]
		if !ok || m[1] == "LATCHKEY_HASH_CONCURRENCY" { // per machine
			continue
		}
		checked++
		if m[2] != def {
			t.Errorf("README says %s defaults to %q, the code to %q", m[1], m[2], def)
		}
	}
	if checked < 10 {
		t.Fatalf("only %d README rows checked: has the table's shape changed?", checked)
	}
}
