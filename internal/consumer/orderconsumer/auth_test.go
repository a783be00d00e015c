package orderconsumer_test

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/go-jose/go-jose/v4"

	"github.com/ordersonkafka/orders/internal/devkit/pgtest"
	"github.com/ordersonkafka/orders/internal/devkit/stacktest"
	"github.com/ordersonkafka/orders/internal/devkit/tokentest"
	"github.com/ordersonkafka/orders/internal/platform/telemetry"
	"github.com/ordersonkafka/orders/internal/platform/web"
	"github.com/ordersonkafka/orders/migrations"
)

// With AUTH_JWKS_URL set, both real APIs take only bearer tokens with the
// scope a route needs, log the token's subject (never the token), keep
// /healthz, /readyz and /metrics open, and report the signing keys in
// /readyz; without it they warn at start-up.
func TestBothAPIsRequireBearerTokens(t *testing.T) {
	t.Parallel()
	iss := tokentest.New(t)
	key := tokentest.NewKey(t, "k1", jose.ES256)
	iss.Publish(key)
	const issuer, audience = "https://issuer.example", "orders"
	env := []string{"AUTH_JWKS_URL", iss.URL, "AUTH_ISSUER", issuer, "AUTH_AUDIENCE", audience}
	read := tokentest.Token(t, key, tokentest.Claims(issuer, audience, "reader-1", web.ScopeRead))
	write := tokentest.Token(t, key, tokentest.Claims(issuer, audience, "writer-1", web.ScopeRead+" "+web.ScopeWrite))

	s := newStack(t)
	logs := stacktest.NewLog(t)
	api, _ := serveOrderAPI(t, s, pgtest.MustDB(t, migrations.Orders()), logs.Logger, telemetry.Config{}, env...)
	c := s.startWith(telemetry.Config{}, logs.Logger, env...)

	send := func(method, url, token, body string) (int, string) {
		req, _ := http.NewRequest(method, url, strings.NewReader(body))
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := client(t, url).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode, resp.Header.Get("WWW-Authenticate")
	}
	body := `{"customer_id":"c","currency":"EUR","items":[{"sku":"a","quantity":1,"unit_price_minor":5}]}`
	for _, tc := range []struct {
		name, method, url, token, body string
		status                         int
		challenge                      string
	}{
		{"order-api: a place without a token", "POST", api + "/orders", "", body, 401, `Bearer realm="orders"`},
		{"order-api: a place with a read-only token", "POST", api + "/orders", read, body, 403, `error="insufficient_scope"`},
		{"order-api: a place with the write scope", "POST", api + "/orders", write, body, 201, ""},
		{"order-api: a list with the read scope", "GET", api + "/orders", read, "", 200, ""},
		{"order-api: /readyz stays open", "GET", api + "/readyz", "", "", 200, ""},
		{"order-api: /metrics stays open", "GET", api + "/metrics", "", "", 200, ""},
		{"order-consumer: a read without a token", "GET", c.url + "/orders/00000000-0000-0000-0000-000000000001", "", "", 401, `Bearer realm="orders"`},
		{"order-consumer: a read with a forged token", "GET", c.url + "/orders/00000000-0000-0000-0000-000000000001", read + "x", "", 401, `error="invalid_token"`},
		{"order-consumer: a read with the read scope", "GET", c.url + "/orders/00000000-0000-0000-0000-000000000001", read, "", 404, ""},
		{"order-consumer: /healthz stays open", "GET", c.url + "/healthz", "", "", 200, ""},
	} {
		st, challenge := send(tc.method, tc.url, tc.token, tc.body)
		if st != tc.status || !strings.Contains(challenge, tc.challenge) {
			t.Errorf("%s: %d %q, want %d %q", tc.name, st, challenge, tc.status, tc.challenge)
		}
	}
	for _, base := range []string{api, c.url} {
		resp, err := client(t, base).Get(base + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !strings.Contains(string(b), `"auth_keys":"ok"`) || !strings.Contains(string(b), `"auth_keys_refresh":"ok"`) {
			t.Errorf("%s/readyz does not report the signing keys: %s", base, b)
		}
	}
	out := logs.String()
	if !strings.Contains(out, "sub=writer-1") {
		t.Error("order-api's request log line does not name the token's subject")
	}
	if strings.Contains(out, write) || strings.Contains(out, read) {
		t.Error("a token appears in the log")
	}
	if strings.Contains(out, "API authentication is off") {
		t.Error("a service says authentication is off while it is on")
	}
}

func TestWithoutAJWKSTheServicesWarnThatAuthenticationIsOff(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	logs := stacktest.NewLog(t)
	api, _ := serveOrderAPI(t, s, pgtest.MustDB(t, migrations.Orders()), logs.Logger, telemetry.Config{})
	s.startWith(telemetry.Config{}, logs.Logger)
	if st, _ := call(t, "POST", api+"/orders", `{"customer_id":"c","currency":"EUR","items":[{"sku":"a","quantity":1,"unit_price_minor":5}]}`); st != 201 {
		t.Fatalf("a place without authentication configured: %d", st)
	}
	if n := strings.Count(logs.String(), "API authentication is off"); n != 2 {
		t.Errorf("%d warnings that authentication is off, want one per service", n)
	}
}
