// Package web is the HTTP toolkit both services' APIs are built with, so
// that they answer alike:
//
//   - RFC 9457 problem details (application/problem+json), the error body of
//     both APIs, with one set of problem type URIs, and the refusals both make
//     the same way (405 with Allow, a query or path that is not text, 503 with
//     Retry-After). A problem body echoes what the client sent at most once
//     and bounded: instance is the request's path, escaped and cut at
//     MaxInstance bytes, and details quote client input cut (text.Quote);
//   - strict JSON request bodies (JSONBody): identity-encoded UTF-8
//     application/json whose keys are exactly the documented names of the
//     struct they decode into, each at most once, refused precisely;
//   - conditional requests: the strong entity tag of a version (ETag) and
//     If-Match (IfMatch: "*" or a list of entity-tags, compared strongly);
//   - a router with /healthz, /readyz (concurrent checks, each bounded) and
//     /metrics, the JSON writer and the 500 path;
//   - Serve, which runs an http.Server until its context ends, then shuts it
//     down gracefully within a bound.
//
// It knows nothing of orders: the domain's types and the JSON form of an
// order stay with the APIs (httpapi maps the domain's field errors to
// FieldError, and the list of entity-tags to a version match), so any API
// could be built on it.
package web

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Details is an RFC 9457 problem details body.
type Details struct {
	Type     string       `json:"type"`
	Title    string       `json:"title"`
	Status   int          `json:"status"`
	Detail   string       `json:"detail,omitempty"`
	Instance string       `json:"instance,omitempty"`
	Errors   []FieldError `json:"errors,omitempty"` // for validation problems
}

// FieldError is one entry of a validation problem's errors: what is wrong
// with one field of the request. The API maps its domain's refusals to it,
// so the body's shape is the platform's, the same in every API.
type FieldError struct {
	Field  string `json:"field"`  // JSON path, e.g. items[2].quantity
	Detail string `json:"detail"` // human-readable reason
}

// Problem types: stable URIs a client can switch on. They are identifiers,
// relative to the API, not links that must resolve.
const (
	TypeMalformed    = "/problems/malformed-request"
	TypeTooLarge     = "/problems/body-too-large"
	TypeMediaType    = "/problems/unsupported-media-type"
	TypeValidation   = "/problems/validation"
	TypeNotFound     = "/problems/not-found"
	TypeTransition   = "/problems/invalid-transition"
	TypePrecondition = "/problems/precondition-failed"
	TypeIdempotency  = "/problems/idempotency-key-reused"
	TypeMethod       = "/problems/method-not-allowed"
	TypeInternal     = "/problems/internal"
	// TypeUnavailable: a dependency (the database) could not be reached or
	// used in time; the request may be retried after Retry-After (a POST
	// with its Idempotency-Key: a commit whose reply was lost is unknown).
	TypeUnavailable = "/problems/unavailable"
	// TypeTooManyWaiting: the read API already holds as many waiting reads
	// (?wait=) as it is configured to; retry after Retry-After, or read
	// without waiting.
	TypeTooManyWaiting = "/problems/too-many-waiting-reads"
)

// Bounds on what a problem body carries, so that no request, however long
// its path, makes a large error response.
const (
	MaxInstance = 256  // bytes of the escaped path in instance
	MaxDetail   = 1024 // bytes of detail, and of each errors[].detail
)

// Problem sends a problem response for r.
func Problem(w http.ResponseWriter, r *http.Request, status int, typ, title, detail string, fields []FieldError) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	if len(fields) > 0 {
		clipped := make([]FieldError, len(fields))
		for i, f := range fields {
			clipped[i] = FieldError{Field: clip(f.Field, MaxDetail), Detail: clip(f.Detail, MaxDetail)}
		}
		fields = clipped
	}
	_ = json.NewEncoder(w).Encode(Details{
		Type: typ, Title: title, Status: status, Detail: clip(detail, MaxDetail), Instance: Instance(r), Errors: fields,
	})
}

// Unavailable sends a 503 problem of type typ with Retry-After set to
// retryAfter in whole seconds (at least 1).
func Unavailable(w http.ResponseWriter, r *http.Request, retryAfter time.Duration, typ, detail string) {
	secs := int64((retryAfter + time.Second - 1) / time.Second)
	w.Header().Set("Retry-After", strconv.FormatInt(max(secs, 1), 10))
	Problem(w, r, http.StatusServiceUnavailable, typ, "Service Unavailable", detail, nil)
}

// Instance is r's path as a problem's instance: percent-escaped, so a URI
// reference whatever bytes the client sent, and cut at MaxInstance bytes
// (never inside an escape).
func Instance(r *http.Request) string {
	p := r.URL.EscapedPath()
	if len(p) <= MaxInstance {
		return p
	}
	cut := MaxInstance
	if i := strings.LastIndexByte(p[cut-2:cut], '%'); i >= 0 {
		cut -= 2 - i
	}
	return p[:cut]
}

// clip cuts s, which we wrote but which may quote client input, to at most
// max bytes on a rune boundary, marked with "…".
func clip(s string, max int) string {
	if len(s) <= max {
		return s
	}
	cut := max - len("…")
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}
