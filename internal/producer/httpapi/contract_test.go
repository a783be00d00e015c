package httpapi_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/go-jose/go-jose/v4"

	"github.com/ordersonkafka/orders/internal/devkit/openapitest"
	"github.com/ordersonkafka/orders/internal/devkit/stacktest"
	"github.com/ordersonkafka/orders/internal/devkit/tokentest"
	"github.com/ordersonkafka/orders/internal/platform/telemetry"
	"github.com/ordersonkafka/orders/internal/platform/web"
	"github.com/ordersonkafka/orders/internal/producer/httpapi"
	"github.com/ordersonkafka/orders/openapi"
)

// The router serves exactly the operations of openapi/order-api.yaml, with
// authentication on or off, and GET /openapi.yaml is that document, byte for
// byte, without a token. Every other test of this package checks its requests
// and answers against the same document (serve).
func TestHoldsItsDocument(t *testing.T) {
	t.Parallel()
	openapitest.HoldsAPI(t, openapi.OrderAPI(), func(auth *web.Auth) http.Handler {
		return httpapi.New(httpapi.Config{Logger: stacktest.Logger(t), Metrics: telemetry.MetricsHandler(telemetry.NewRegistry()), Auth: auth}, nil)
	})
}

// With authentication on, the refusals (401, 403, and 503 while the
// issuer's keys cannot be fetched) and the open routes answer as the
// document says; serve checks each answer against it.
func TestAuthenticationAnswersAsDocumented(t *testing.T) {
	t.Parallel()
	const issuer, audience = "https://issuer.example", "orders"
	iss := tokentest.New(t)
	key := tokentest.NewKey(t, "k1", jose.ES256)
	iss.Publish(key)
	read := "Bearer " + tokentest.Token(t, key, tokentest.Claims(issuer, audience, "reader", web.ScopeRead))
	write := "Bearer " + tokentest.Token(t, key, tokentest.Claims(issuer, audience, "writer", web.ScopeWrite))
	api := serve(t, httpapi.New(httpapi.Config{Logger: stacktest.Logger(t), Auth: newAuth(t, iss.URL, issuer, audience)}, nil))
	noKeys := httptest.NewServer(http.NotFoundHandler()) // an identity provider that does not answer its JWKS
	t.Cleanup(noKeys.Close)
	keyless := serve(t, httpapi.New(httpapi.Config{Logger: stacktest.Logger(t), Auth: newAuth(t, noKeys.URL, issuer, audience)}, nil))
	const id = "0193f2a0-0000-7000-8000-000000000000"
	for _, tc := range []struct {
		name, method, base, path, authz string
		status                          int
	}{
		{"a read without a token", "GET", api.URL, "/orders/" + id, "", 401},
		{"a read with a malformed token", "GET", api.URL, "/orders/" + id, "Bearer not.a.jwt", 401},
		{"a read with the write scope only", "GET", api.URL, "/orders", write, 403},
		{"a pay with the read scope only", "POST", api.URL, "/orders/" + id + "/pay", read, 403},
		{"a read with the read scope, of a malformed id", "GET", api.URL, "/orders/not-a-uuid", read, 400},
		{"a read while the issuer's keys cannot be fetched", "GET", keyless.URL, "/orders/" + id, read, 503},
		{"/healthz without a token", "GET", api.URL, "/healthz", "", 200},
		{"/readyz without a token", "GET", api.URL, "/readyz", "", 200},
		{"/openapi.yaml without a token", "GET", api.URL, "/openapi.yaml", "", 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequest(tc.method, tc.base+tc.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			if tc.authz != "" {
				req.Header.Set("Authorization", tc.authz)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.status {
				t.Errorf("%d, want %d", resp.StatusCode, tc.status)
			}
		})
	}
}

// newAuth is the authentication of tokens from issuer for audience, with
// the keys at jwksURL.
func newAuth(t *testing.T, jwksURL, issuer, audience string) *web.Auth {
	t.Helper()
	auth, err := web.NewAuth(web.AuthConfig{Issuer: issuer, Audience: audience, Keys: web.KeySetConfig{URL: jwksURL}})
	if err != nil {
		t.Fatal(err)
	}
	return auth
}
