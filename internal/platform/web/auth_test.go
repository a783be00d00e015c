package web_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/go-jose/go-jose/v4"

	"github.com/ordersonkafka/orders/internal/devkit/tokentest"
	"github.com/ordersonkafka/orders/internal/platform/web"
)

// The token matrix, through the router both APIs are built on: each case
// with its status, WWW-Authenticate and problem type; the handler sees the
// token's subject; /healthz stays open.
func TestBearerTokens(t *testing.T) {
	iss := tokentest.New(t)
	const issuerURL, audience = "https://issuer.example", "orders-api"
	auth := web.NewAuth(context.Background(), iss.URL, issuerURL, audience)
	root := web.NewRouter(web.RouterConfig{})
	r := web.Guarded(root, auth)
	var sub atomic.Value
	ok := func(w http.ResponseWriter, r *http.Request) {
		sub.Store(web.Subject(r.Context()))
		w.WriteHeader(http.StatusNoContent)
	}
	r.Get("/orders/{id}", ok)
	r.Post("/orders", ok)
	srv := httptest.NewServer(root)
	defer srv.Close()

	request := func(method, path string) func(string) *http.Request {
		return func(authz string) *http.Request {
			req, _ := http.NewRequest(method, srv.URL+path, nil)
			if authz != "" {
				req.Header.Set("Authorization", authz)
			}
			return req
		}
	}
	// Published before the matrix runs, so the verifier has it from its
	// first fetch: go-oidc hands a fetch asked for just as another ends the
	// ended one's keys, and a key published in between would be missed.
	key := tokentest.NewKey(t, "sub-check", jose.ES256)
	iss.Publish(key)
	tokentest.Matrix(t, iss, issuerURL, audience, tokentest.API{
		Read: request("GET", "/orders/1"), ReadOK: 204, Write: request("POST", "/orders"), WriteOK: 204})

	resp, err := http.DefaultClient.Do(request("GET", "/orders/1")("Bearer " + tokentest.Token(t, key, tokentest.Claims(issuerURL, audience, "alice", web.ScopeRead))))
	if err != nil || resp.StatusCode != 204 {
		t.Fatalf("a good token: %v %v", resp, err)
	}
	resp.Body.Close()
	if got := sub.Load(); got != "alice" {
		t.Errorf("the handler saw subject %v, want alice", got)
	}
	resp, err = http.Get(srv.URL + "/healthz")
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
