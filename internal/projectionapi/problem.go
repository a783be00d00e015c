package projectionapi

import (
	"encoding/json"
	"net/http"
)

// TODO(lead): this duplicates the RFC 9457 writer of internal/httpapi
// (problem.go), deliberately kept to the same body and type URIs; replace it
// with the shared helper once that is factored out of httpapi.

// problem is an RFC 9457 problem details body.
type problem struct {
	Type     string `json:"type"`
	Title    string `json:"title"`
	Status   int    `json:"status"`
	Detail   string `json:"detail,omitempty"`
	Instance string `json:"instance,omitempty"`
}

// Problem types, the same URIs as order-api's for the same problems.
const (
	typeMalformed = "/problems/malformed-request"
	typeNotFound  = "/problems/not-found"
	typeMethod    = "/problems/method-not-allowed"
	typeInternal  = "/problems/internal"
)

func writeProblem(w http.ResponseWriter, r *http.Request, status int, typ, title, detail string) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(problem{Type: typ, Title: title, Status: status, Detail: detail, Instance: r.URL.Path})
}
