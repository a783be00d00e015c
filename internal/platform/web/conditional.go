package web

import (
	"net/http"
	"slices"
	"strconv"
	"strings"
)

// ETag is the strong entity tag of a representation at version:
// `"<version>"`. Both APIs tag an order so, so the same version of the same
// order has the same tag in both.
func ETag(version int64) string { return `"` + strconv.FormatInt(version, 10) + `"` }

// IfMatch is a request's If-Match precondition (RFC 9110 §13.1.1).
type IfMatch struct {
	any    bool     // no field, an empty one, or "*"
	strong []string // the strong entity-tags listed, quotes included
}

// Any reports whether the precondition is met by any current
// representation: the request had no If-Match, an empty one, or "*". (That
// the resource exists at all is the caller's to check.)
func (m IfMatch) Any() bool { return m.any }

// Matches reports whether a representation whose strong entity tag is etag
// (as ETag writes it) meets the precondition: Any, or etag is in the list by
// strong comparison, so a weak tag of the list (W/"1") never matches, nor
// does another spelling of the same number ("01", "+1").
func (m IfMatch) Matches(etag string) bool { return m.any || slices.Contains(m.strong, etag) }

// ReadIfMatch reads r's If-Match: all its field lines, as one list. A field
// that is neither "*" nor a list of entity-tags is refused here with 400,
// and ReadIfMatch returns false; the caller only returns.
func ReadIfMatch(w http.ResponseWriter, r *http.Request) (IfMatch, bool) {
	m, ok := ParseIfMatch(r.Header)
	if !ok {
		Problem(w, r, http.StatusBadRequest, TypeMalformed, "Bad Request",
			`If-Match must be * or a list of entity-tags, such as "3" or "3", "4"`, nil)
	}
	return m, ok
}

// ParseIfMatch reads the If-Match field lines of h as one list; ok is false
// if they are neither "*" nor a list of entity-tags (1#entity-tag, empty
// elements and optional white space allowed).
func ParseIfMatch(h http.Header) (m IfMatch, ok bool) {
	f := strings.TrimSpace(strings.Join(h.Values("If-Match"), ","))
	if f == "" || f == "*" {
		return IfMatch{any: true}, true
	}
	tags := 0
	for i := 0; i < len(f); {
		switch f[i] {
		case ' ', '\t', ',': // OWS and empty list elements
			i++
			continue
		}
		weak := strings.HasPrefix(f[i:], `W/`)
		if weak {
			i += 2
		}
		if i >= len(f) || f[i] != '"' {
			return IfMatch{}, false
		}
		end := i + 1
		for end < len(f) && f[end] != '"' {
			if c := f[end]; c < 0x21 || c == 0x7f { // etagc: %x21 / %x23-7E / obs-text
				return IfMatch{}, false
			}
			end++
		}
		if end >= len(f) {
			return IfMatch{}, false
		}
		tag := f[i : end+1]
		i = end + 1
		for i < len(f) && (f[i] == ' ' || f[i] == '\t') {
			i++
		}
		if i < len(f) && f[i] != ',' {
			return IfMatch{}, false
		}
		tags++
		if !weak {
			m.strong = append(m.strong, tag)
		}
	}
	return m, tags > 0
}

// PositiveInt parses s, a query parameter, as a positive integer written
// the one way this API writes numbers: decimal digits, no sign, no leading
// zero, at most 18 digits. Anything else ("+5", "05", "5.0", " 5", "1e3") is
// refused, as If-Match refuses an ETag of "01": a number that means the
// same thing written two ways would make two URLs of one resource (and two
// cache entries), and a lenient parse hides a client's bug.
func PositiveInt(s string) (int64, bool) {
	if s == "" || len(s) > 18 || s[0] < '1' || s[0] > '9' {
		return 0, false
	}
	var n int64
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
		n = n*10 + int64(s[i]-'0')
	}
	return n, true
}
