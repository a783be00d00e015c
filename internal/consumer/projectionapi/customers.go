package projectionapi

import (
	"fmt"
	"net/http"
	"net/url"

	"github.com/go-chi/chi/v5"

	"github.com/ordersonkafka/orders/internal/order"
	"github.com/ordersonkafka/orders/internal/platform/web"
	"github.com/ordersonkafka/orders/internal/text"
	"github.com/ordersonkafka/orders/openapi"
)

// customerSummary answers GET /customers/{customer_id}/summary.
func (a *api) customerSummary(w http.ResponseWriter, r *http.Request) {
	customer := chi.URLParam(r, "customer_id")
	if r.URL.RawPath != "" { // chi routed on the escaped path: its parameters are escaped
		var err error
		if customer, err = url.PathUnescape(customer); err != nil {
			customer = ""
		}
	}
	if customer == "" || len(customer) > order.MaxCustomerIDLen || !text.Valid(customer) {
		web.Problem(w, r, http.StatusBadRequest, web.TypeMalformed, "Bad Request",
			fmt.Sprintf("the customer id in the path is not 1 to %d bytes of text", order.MaxCustomerIDLen), nil)
		return
	}
	c, err := a.customers.Get(r.Context(), customer)
	if err != nil {
		a.readError(w, r, err, fmt.Sprintf("no order of customer %s is in the projection", text.Quote(customer, 64)))
		return
	}
	// The totals move on as events arrive: caches must revalidate.
	w.Header().Set("Cache-Control", "no-cache")
	web.JSON(w, http.StatusOK, openapi.CustomerSummaryOf(c))
}
