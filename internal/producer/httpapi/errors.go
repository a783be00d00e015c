package httpapi

import (
	"errors"
	"net/http"

	"github.com/go-chi/chi/v5"

	"github.com/ordersonkafka/orders/internal/order"
	"github.com/ordersonkafka/orders/internal/platform/telemetry"
	"github.com/ordersonkafka/orders/internal/platform/web"
)

// storeError maps the domain errors of order.Store to statuses.
func (a *api) storeError(w http.ResponseWriter, r *http.Request, err error) {
	var te *order.TransitionError
	var ve *order.ValidationError
	switch {
	case errors.Is(err, order.ErrUnavailable) && r.Context().Err() == nil:
		a.log.WarnContext(r.Context(), "order store unavailable", "method", telemetry.Method(r.Method), "path", web.Instance(r), "error", err)
		web.Unavailable(w, r, RetryAfter, web.TypeUnavailable, "the order store cannot be reached right now; retry after the Retry-After delay"+retryHow(r))
	case errors.Is(err, order.ErrNotFound):
		web.Problem(w, r, http.StatusNotFound, web.TypeNotFound, "Not Found", "no order with this id", nil)
	case errors.As(err, &te):
		web.Problem(w, r, http.StatusConflict, web.TypeTransition, "Conflict", te.Error(), nil)
	case errors.Is(err, order.ErrVersionMismatch):
		web.Problem(w, r, http.StatusPreconditionFailed, web.TypePrecondition, "Precondition Failed",
			"the order has changed since the version in If-Match; GET it and retry", nil)
	case errors.As(err, &ve):
		invalid(w, r, "the request is not valid; see errors", ve.Fields)
	default:
		a.internal(w, r, err)
	}
}

// retryHow says how to retry r safely when it may have been carried out
// (the reply was lost), as each route allows: POST /orders with its
// Idempotency-Key, a change with If-Match (it ignores Idempotency-Key), a
// read as it is.
func retryHow(r *http.Request) string {
	switch {
	case r.Method != http.MethodPost:
		return ""
	case chi.URLParam(r, "id") != "":
		return ", with If-Match set to the ETag you last read, so the change is made at most once (412 if the order changed meanwhile)"
	}
	return ", with the same Idempotency-Key"
}

// invalid answers 422 with the domain's field errors as the problem's errors.
func invalid(w http.ResponseWriter, r *http.Request, detail string, fields []order.FieldError) {
	errs := make([]web.FieldError, len(fields))
	for i, f := range fields {
		errs[i] = web.FieldError{Field: f.Field, Detail: f.Detail}
	}
	web.Problem(w, r, http.StatusUnprocessableEntity, web.TypeValidation, "Unprocessable Content", detail, errs)
}

// internal answers 500 without details and logs the cause. Only POST
// /orders honours Idempotency-Key; a change (POST /orders/{id}/pay, refund,
// cancel) ignores it, and If-Match is what makes its retry safe; a read is
// safe to retry as it is.
func (a *api) internal(w http.ResponseWriter, r *http.Request, err error) {
	detail := "the request could not be completed; it is safe to retry with the same Idempotency-Key"
	switch {
	case r.Method != http.MethodPost:
		detail = "the request could not be completed; it is safe to retry"
	case chi.URLParam(r, "id") != "":
		detail = "the request could not be completed and may have changed the order; retry with If-Match set to the ETag you last read, " +
			"so the change is made at most once (412 if the order changed meanwhile)"
	}
	web.Internal(a.log, w, r, err, detail)
}
