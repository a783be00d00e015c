package httpapi

import (
	"encoding/json"
	"net/http"

	"github.com/ordersonkafka/orders/internal/order"
)

// problem is an RFC 9457 problem details body.
type problem struct {
	Type     string             `json:"type"`
	Title    string             `json:"title"`
	Status   int                `json:"status"`
	Detail   string             `json:"detail,omitempty"`
	Instance string             `json:"instance,omitempty"`
	Errors   []order.FieldError `json:"errors,omitempty"`
}

// Problem types: stable URIs a client can switch on. They are identifiers,
// relative to the API, not links that must resolve.
const (
	typeMalformed    = "/problems/malformed-request"
	typeTooLarge     = "/problems/body-too-large"
	typeMediaType    = "/problems/unsupported-media-type"
	typeValidation   = "/problems/validation"
	typeNotFound     = "/problems/not-found"
	typeTransition   = "/problems/invalid-transition"
	typePrecondition = "/problems/precondition-failed"
	typeIdempotency  = "/problems/idempotency-key-reused"
	typeMethod       = "/problems/method-not-allowed"
	typeInternal     = "/problems/internal"
)

func writeProblem(w http.ResponseWriter, r *http.Request, status int, typ, title, detail string, fields []order.FieldError) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(problem{
		Type: typ, Title: title, Status: status, Detail: detail, Instance: r.URL.Path, Errors: fields,
	})
}
