package orderconsumer_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/ordersonkafka/orders/internal/devkit/openapitest"
	"github.com/ordersonkafka/orders/internal/devkit/pgtest"
	"github.com/ordersonkafka/orders/internal/devkit/stacktest"
	"github.com/ordersonkafka/orders/internal/devkit/tokentest"
	"github.com/ordersonkafka/orders/internal/platform/telemetry"
	"github.com/ordersonkafka/orders/migrations"
	"github.com/ordersonkafka/orders/openapi"
)

// The whole token matrix on each real API (the two services as they run,
// each with an issuer of its own so each rotates its keys alone): order-api
// on a read and a place, order-consumer on a read (it has no write route);
// every refusal is also held to the API's OpenAPI document.
func TestTheTokenMatrixOnEachRealAPI(t *testing.T) {
	t.Parallel()
	const issuer, audience = "https://issuer.example", "orders"
	apiIss, consumerIss := tokentest.New(t), tokentest.New(t)
	env := func(iss *tokentest.Issuer) []string {
		// A short refresh interval: the matrix publishes its keys after the
		// services fetched the JWKS, and rotates one in.
		return []string{"AUTH_JWKS_URL", iss.URL, "AUTH_ISSUER", issuer, "AUTH_AUDIENCE", audience, "AUTH_JWKS_REFRESH_INTERVAL", "1s"}
	}
	s := newStack(t)
	logs := stacktest.NewLog(t)
	api, _ := serveOrderAPI(t, s, pgtest.MustDB(t, migrations.Orders()), logs.Logger, telemetry.Config{}, env(apiIss)...)
	c := s.startWith(telemetry.Config{}, logs.Logger, env(consumerIss)...)

	request := func(method, url, body string) func(string) *http.Request {
		return func(authz string) *http.Request {
			req, _ := http.NewRequest(method, url, strings.NewReader(body))
			if body != "" {
				req.Header.Set("Content-Type", "application/json")
			}
			if authz != "" {
				req.Header.Set("Authorization", authz)
			}
			return req
		}
	}
	const unknown = "/orders/00000000-0000-0000-0000-000000000001"
	t.Run("order-api", func(t *testing.T) {
		tokentest.Matrix(t, apiIss, issuer, audience, tokentest.API{
			Read: request("GET", api+unknown, ""), ReadOK: 404,
			Write:   request("POST", api+"/orders", `{"customer_id":"c","currency":"EUR","items":[{"sku":"a","quantity":1,"unit_price_minor":5}]}`),
			WriteOK: 201, Client: openapitest.Load(t, openapi.OrderAPI()).Client(t)})
	})
	t.Run("order-consumer", func(t *testing.T) {
		tokentest.Matrix(t, consumerIss, issuer, audience, tokentest.API{Read: request("GET", c.url+unknown, ""), ReadOK: 404,
			Client: openapitest.Load(t, openapi.OrderConsumer()).Client(t)})
	})
}
