// Package docs holds the documentation sources written by hand that the
// medic binary embeds: the roff source of medic(8), a text/template that
// `medic gendocs` fills in with the date, the version and the list of
// commands (cmd/medic/gendocs.go).
package docs

import _ "embed"

// Medic8 is the template of medic(8); see medic.8.in.
//
//go:embed medic.8.in
var Medic8 string
