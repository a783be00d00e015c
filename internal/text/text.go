// Package text is the one rule for the text the services take from outside
// and keep or echo, shared by the domain, the platform and the adapters so
// that all of them accept and show the same strings: text is valid UTF-8
// without NUL, which PostgreSQL's text type cannot hold, and what a client
// sent is echoed quoted and cut, never whole. It imports nothing of ours.
package text

import (
	"strconv"
	"strings"
	"unicode/utf8"
)

// Rule is how a refusal of a field that is not Valid words it.
const Rule = "must be valid UTF-8 without NUL characters"

// Valid reports whether s can be stored and echoed as text: valid UTF-8
// without NUL (U+0000), which PostgreSQL's text cannot hold.
func Valid(s string) bool {
	return utf8.ValidString(s) && !strings.ContainsRune(s, 0)
}

// Quote returns s as a Go-quoted string of at most max bytes of s, marked
// with "…" when cut, so error details never echo a client's input whole.
func Quote(s string, max int) string {
	if len(s) <= max {
		return strconv.Quote(s)
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return strconv.Quote(s[:cut]) + "…"
}

// Cut returns s cut to at most max bytes, at a rune boundary, marked with
// "…" when cut: for a value that a structured log or a span escapes by
// itself, which Quote would have quoted twice. s must be Valid.
func Cut(s string, max int) string {
	if len(s) <= max {
		return s
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}
