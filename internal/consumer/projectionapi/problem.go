package projectionapi

import (
	"net/http"

	"github.com/ordersonkafka/orders/internal/platform/problem"
)

// The same problem types as order-api's for the same problems.
const (
	typeMalformed = problem.TypeMalformed
	typeNotFound  = problem.TypeNotFound
	typeInternal  = problem.TypeInternal
)

func writeProblem(w http.ResponseWriter, r *http.Request, status int, typ, title, detail string) {
	problem.Write(w, r, status, typ, title, detail, nil)
}
