package tokentest

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/ordersonkafka/orders/internal/platform/web"
)

// API is a resource server the token matrix is run against: requests to
// one of its read routes and, unless it has none, one of its write routes.
type API struct {
	// Read is a request to a read route carrying the Authorization header
	// authz ("" for none); ReadOK is its status once the token passes.
	Read   func(authz string) *http.Request
	ReadOK int
	// Write is the same for a write route; nil if the API has none.
	Write   func(authz string) *http.Request
	WriteOK int
	// Client sends the requests; nil is http.DefaultClient.
	Client *http.Client
}

// Matrix runs every case of the bearer-token contract against api, each as
// a subtest checking its status, WWW-Authenticate and problem type, and
// that no refusal echoes the token: no token, not a bearer token,
// malformed, a wrong signature, expired, without exp or with exp as a
// string, another issuer, another audience,
// a missing scope for each route kind, both key types, scopes as scp, a key
// rotated into the JWKS after the keys were cached (503 with Retry-After
// until the API may fetch the JWKS again, then taken), and an expiry within
// the leeway. iss must be new, its JWKS the one api verifies against, for
// issuer and audience, with a refresh interval of a few seconds at most;
// Matrix publishes the keys it signs with.
func Matrix(t *testing.T, iss *Issuer, issuer, audience string, api API) {
	t.Helper()
	client := api.Client
	if client == nil {
		client = http.DefaultClient
	}
	send := func(t *testing.T, req *http.Request) (*http.Response, problem) {
		t.Helper()
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var p problem
		_ = json.NewDecoder(resp.Body).Decode(&p)
		return resp, p
	}
	// until sends req() until it is answered ok, each other answer a 503
	// with Retry-After: the API waits for its next JWKS fetch.
	until := func(t *testing.T, req func() *http.Request, ok int) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			resp, p := send(t, req())
			if resp.StatusCode == ok {
				return
			}
			if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
				t.Fatalf("status %d (%s), want %d or 503 with Retry-After while the key is fetched", resp.StatusCode, p.Detail, ok)
			}
			if time.Now().After(deadline) {
				t.Fatalf("still 503 (%s) after 30 s", p.Detail)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	rsaKey, ecKey := NewKey(t, "rsa-1", jose.RS256), NewKey(t, "ec-1", jose.ES256)
	iss.Publish(rsaKey)
	iss.Publish(ecKey)
	rotated := NewKey(t, "rsa-2", jose.RS256)  // published only after the verifier cached the set
	stranger := NewKey(t, "rsa-1", jose.RS256) // the same kid, another key: a forged signature
	now := time.Now()
	claims := func(edit func(map[string]any)) map[string]any {
		c := Claims(issuer, audience, "alice", web.ScopeRead+" "+web.ScopeWrite)
		if edit != nil {
			edit(c)
		}
		return c
	}
	bearer := func(k Key, edit func(map[string]any)) string { return "Bearer " + Token(t, k, claims(edit)) }
	const read, write = "read", "write"
	// The API may have fetched the JWKS before the keys were published.
	until(t, func() *http.Request { return api.Read(bearer(rsaKey, nil)) }, api.ReadOK)
	for _, tc := range []struct {
		name, route, authz string
		status             int
		challenge, typ     string
	}{
		{"no token", read, "", 401, `Bearer realm="orders"`, web.TypeUnauthorized},
		{"not a bearer token", read, "Basic YWxpY2U6cHc=", 401, `Bearer realm="orders"`, web.TypeUnauthorized},
		{"a malformed token", read, "Bearer not.a.jwt", 401, `error="invalid_token"`, web.TypeUnauthorized},
		{"a wrong signature", read, bearer(stranger, nil), 401, `error="invalid_token"`, web.TypeUnauthorized},
		{"expired", read, bearer(rsaKey, func(c map[string]any) { c["exp"] = now.Add(-time.Hour).Unix() }), 401, `error="invalid_token"`, web.TypeUnauthorized},
		{"without exp", read, bearer(rsaKey, func(c map[string]any) { delete(c, "exp") }), 401, `error="invalid_token"`, web.TypeUnauthorized},
		{"exp as a string", read, bearer(rsaKey, func(c map[string]any) { c["exp"] = strconv.FormatInt(now.Add(time.Hour).Unix(), 10) }), 401, `error="invalid_token"`, web.TypeUnauthorized},
		{"from another issuer", read, bearer(rsaKey, func(c map[string]any) { c["iss"] = "https://evil.example" }), 401, `error="invalid_token"`, web.TypeUnauthorized},
		{"for another audience", read, bearer(rsaKey, func(c map[string]any) { c["aud"] = "billing" }), 401, `error="invalid_token"`, web.TypeUnauthorized},
		{"a write without a token", write, "", 401, `Bearer realm="orders"`, web.TypeUnauthorized},
		{"a write without the write scope", write, bearer(rsaKey, func(c map[string]any) { c["scope"] = web.ScopeRead }), 403, `error="insufficient_scope", scope="orders:write"`, web.TypeForbidden},
		{"a read without the read scope", read, bearer(ecKey, func(c map[string]any) { c["scope"] = web.ScopeWrite }), 403, `error="insufficient_scope", scope="orders:read"`, web.TypeForbidden},
		{"the read scope, RS256", read, bearer(rsaKey, nil), api.ReadOK, "", ""},
		{"the write scope as scp, ES256", write, bearer(ecKey, func(c map[string]any) { delete(c, "scope"); c["scp"] = []string{web.ScopeWrite} }), api.WriteOK, "", ""},
		{"a key rotated in after the keys were cached", read, "rotate", api.ReadOK, "", ""},
		{"expired less than the leeway ago", read, bearer(rsaKey, func(c map[string]any) { c["exp"] = now.Add(-web.Leeway / 3).Unix() }), api.ReadOK, "", ""},
	} {
		if tc.route == write && api.Write == nil {
			continue
		}
		t.Run(tc.name, func(t *testing.T) {
			authz := tc.authz
			if authz == "rotate" {
				iss.Publish(rotated)
				authz = bearer(rotated, nil)
				until(t, func() *http.Request { return api.Read(authz) }, tc.status)
			}
			req := api.Read(authz)
			if tc.route == write {
				req = api.Write(authz)
			}
			resp, p := send(t, req)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d (%s), want %d", resp.StatusCode, p.Detail, tc.status)
			}
			if got := resp.Header.Get("WWW-Authenticate"); !strings.Contains(got, tc.challenge) || (tc.challenge == "") != (got == "") {
				t.Errorf("WWW-Authenticate %q, want it to hold %q", got, tc.challenge)
			}
			if tc.typ != "" && p.Type != tc.typ {
				t.Errorf("problem type %q, want %q", p.Type, tc.typ)
			}
			if strings.Contains(p.Detail, "eyJ") {
				t.Errorf("the refusal echoes the token: %s", p.Detail)
			}
		})
	}
}

// problem is the part of a problem body the matrix reads.
type problem struct{ Type, Detail string }
