package web_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/ordersonkafka/orders/internal/devkit/tokentest"
	"github.com/ordersonkafka/orders/internal/platform/web"
)

// The token matrix, through the router both APIs are built on: each case
// with its status, WWW-Authenticate and problem type; /healthz stays open.
func TestBearerTokens(t *testing.T) {
	iss := tokentest.New(t)
	rsaKey, ecKey := tokentest.NewKey(t, "rsa-1", jose.RS256), tokentest.NewKey(t, "ec-1", jose.ES256)
	iss.Publish(rsaKey)
	iss.Publish(ecKey)
	const issuerURL, audience = "https://issuer.example", "orders-api"
	auth := web.NewAuth(context.Background(), iss.URL, issuerURL, audience)
	root := web.NewRouter(web.RouterConfig{})
	r := web.Guarded(root, auth)
	var sub string
	ok := func(w http.ResponseWriter, r *http.Request) {
		sub = web.Subject(r.Context())
		w.WriteHeader(http.StatusNoContent)
	}
	r.Get("/orders/{id}", ok)
	r.Post("/orders", ok)
	srv := httptest.NewServer(root)
	defer srv.Close()

	now := time.Now()
	claims := func(edit func(map[string]any)) map[string]any {
		c := tokentest.Claims(issuerURL, audience, "alice", "orders:read orders:write")
		if edit != nil {
			edit(c)
		}
		return c
	}
	rotated := tokentest.NewKey(t, "rsa-2", jose.RS256)  // published only after the verifier cached the set
	stranger := tokentest.NewKey(t, "rsa-1", jose.RS256) // same kid, another key: a forged signature
	for _, tc := range []struct {
		name, method, auth string
		status             int
		challenge, typ     string
	}{
		{"no token", "GET", "", 401, `Bearer realm="orders"`, web.TypeUnauthorized},
		{"not a bearer token", "GET", "Basic YWxpY2U6cHc=", 401, `Bearer realm="orders"`, web.TypeUnauthorized},
		{"a malformed token", "GET", "Bearer not.a.jwt", 401, `error="invalid_token"`, web.TypeUnauthorized},
		{"a wrong signature", "GET", "Bearer " + tokentest.Token(t, stranger, claims(nil)), 401, `error="invalid_token"`, web.TypeUnauthorized},
		{"expired", "GET", "Bearer " + tokentest.Token(t, rsaKey, claims(func(c map[string]any) { c["exp"] = now.Add(-time.Hour).Unix() })), 401, `error="invalid_token"`, web.TypeUnauthorized},
		{"from another issuer", "GET", "Bearer " + tokentest.Token(t, rsaKey, claims(func(c map[string]any) { c["iss"] = "https://evil.example" })), 401, `error="invalid_token"`, web.TypeUnauthorized},
		{"for another audience", "GET", "Bearer " + tokentest.Token(t, rsaKey, claims(func(c map[string]any) { c["aud"] = "billing" })), 401, `error="invalid_token"`, web.TypeUnauthorized},
		{"without the write scope", "POST", "Bearer " + tokentest.Token(t, rsaKey, claims(func(c map[string]any) { c["scope"] = "orders:read" })), 403, `error="insufficient_scope", scope="orders:write"`, web.TypeForbidden},
		{"without the read scope", "GET", "Bearer " + tokentest.Token(t, ecKey, claims(func(c map[string]any) { c["scope"] = "orders:write" })), 403, `error="insufficient_scope", scope="orders:read"`, web.TypeForbidden},
		{"read scope, RS256", "GET", "Bearer " + tokentest.Token(t, rsaKey, claims(nil)), 204, "", ""},
		{"write scope as scp, ES256", "POST", "Bearer " + tokentest.Token(t, ecKey, claims(func(c map[string]any) { delete(c, "scope"); c["scp"] = []string{"orders:write"} })), 204, "", ""},
		{"a key rotated in after the keys were cached", "GET", "rotate", 204, "", ""},
		{"expired less than the leeway ago", "GET", "Bearer " + tokentest.Token(t, rsaKey, claims(func(c map[string]any) { c["exp"] = now.Add(-web.Leeway / 3).Unix() })), 204, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			authz := tc.auth
			if authz == "rotate" {
				iss.Publish(rotated)
				authz = "Bearer " + tokentest.Token(t, rotated, claims(nil))
			}
			req, _ := http.NewRequest(tc.method, srv.URL+"/orders", nil)
			if tc.method == "GET" {
				req, _ = http.NewRequest(tc.method, srv.URL+"/orders/1", nil)
			}
			if authz != "" {
				req.Header.Set("Authorization", authz)
			}
			sub = ""
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var p struct{ Type, Detail string }
			_ = json.NewDecoder(resp.Body).Decode(&p)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d (%s), want %d", resp.StatusCode, p.Detail, tc.status)
			}
			if got := resp.Header.Get("WWW-Authenticate"); !strings.Contains(got, tc.challenge) || (tc.challenge == "") != (got == "") {
				t.Errorf("WWW-Authenticate %q, want it to hold %q", got, tc.challenge)
			}
			if p.Type != tc.typ {
				t.Errorf("problem type %q, want %q", p.Type, tc.typ)
			}
			if tc.status == 204 && sub != "alice" {
				t.Errorf("the handler saw subject %q, want alice", sub)
			}
			if strings.Contains(p.Detail, "eyJ") {
				t.Errorf("the refusal echoes the token: %s", p.Detail)
			}
		})
	}
	resp, err := http.Get(srv.URL + "/healthz")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("/healthz without a token: %v %v", resp, err)
	}
	resp.Body.Close()
}

// When the issuer's keys cannot be fetched, a token is neither accepted nor
// called invalid: the answer is 503 with Retry-After, so the client retries
// the same token instead of dropping it.
func TestAnUnreachableIssuerIsUnavailableNotUnauthorized(t *testing.T) {
	key := tokentest.NewKey(t, "k", jose.ES256)
	jwks := httptest.NewServer(http.NotFoundHandler()) // an identity provider that does not answer its JWKS
	defer jwks.Close()
	root := web.NewRouter(web.RouterConfig{})
	web.Guarded(root, web.NewAuth(context.Background(), jwks.URL, "https://issuer.example", "orders")).
		Get("/orders/{id}", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) })
	srv := httptest.NewServer(root)
	defer srv.Close()
	req, _ := http.NewRequest("GET", srv.URL+"/orders/1", nil)
	req.Header.Set("Authorization", "Bearer "+tokentest.Token(t, key, tokentest.Claims("https://issuer.example", "orders", "alice", web.ScopeRead)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var p struct{ Type string }
	_ = json.NewDecoder(resp.Body).Decode(&p)
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" || p.Type != web.TypeUnavailable {
		t.Fatalf("%d, Retry-After %q, type %q; want 503 with Retry-After, %s", resp.StatusCode, resp.Header.Get("Retry-After"), p.Type, web.TypeUnavailable)
	}
}
