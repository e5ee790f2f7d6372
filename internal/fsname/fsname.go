// Package fsname holds the one rule for the names medic turns into file and
// directory names: check names (state_dir/checks/NAME.json and the
// temporary files written beside it) and notifier names (the outbox
// directory state_dir/outbox/NAME). The configuration's validation and the
// code that creates those files both call Check, so a name that
// `medic check-config` accepts can always be written by `medic run`.
package fsname

import (
	"fmt"
	"slices"
	"strings"
)

// MaxLen is the longest name, in bytes. The longest file made of a name is
// a state file's temporary copy, ".NAME.json.tmp-" and ten digits: with
// MaxLen it stays far below NAME_MAX (255 bytes on Linux file systems).
const MaxLen = 64

// OutboxCorrupt is the directory beside the notifiers' directories in the
// outbox that receives the files the outbox could not parse.
const OutboxCorrupt = "corrupt"

// Reserved lists the names no check or notifier may have: directories
// medic itself keeps beside the ones it makes from names.
var Reserved = []string{OutboxCorrupt}

// Check returns nil when name is a valid check or notifier name: 1 to MaxLen
// bytes of ASCII letters, digits, '.', '_' and '-', not starting with '.'
// (no hidden file, no "." or ".."), and not one of Reserved. Otherwise its
// error says which part of the rule name breaks, e.g. `name "..": starts
// with a dot`.
func Check(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("empty name")
	case len(name) > MaxLen:
		return fmt.Errorf("name of %d bytes: at most %d", len(name), MaxLen)
	case name[0] == '.':
		return fmt.Errorf("name %q: starts with a dot", name)
	case strings.ContainsAny(name, "/\\\x00"):
		return fmt.Errorf("name %q: contains a path separator or NUL", name)
	case slices.Contains(Reserved, name):
		return fmt.Errorf("name %q: reserved by medic's state directory", name)
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; !validByte(c) {
			return fmt.Errorf("name %q: use only letters, digits, '.', '_' and '-'", name)
		}
	}
	return nil
}

func validByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-'
}
