// Package problem writes RFC 9457 problem details (application/problem+json),
// the error body of both services' HTTP APIs, with one set of problem type
// URIs so a client handles both the same way.
package problem

import (
	"encoding/json"
	"net/http"

	"github.com/ordersonkafka/orders/internal/order"
)

// Details is an RFC 9457 problem details body.
type Details struct {
	Type     string             `json:"type"`
	Title    string             `json:"title"`
	Status   int                `json:"status"`
	Detail   string             `json:"detail,omitempty"`
	Instance string             `json:"instance,omitempty"`
	Errors   []order.FieldError `json:"errors,omitempty"` // for validation problems
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
)

// Write sends a problem response for r.
func Write(w http.ResponseWriter, r *http.Request, status int, typ, title, detail string, fields []order.FieldError) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(Details{
		Type: typ, Title: title, Status: status, Detail: detail, Instance: r.URL.Path, Errors: fields,
	})
}
