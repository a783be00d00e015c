package tokentest

import (
	"encoding/json"
	"net/http"
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
// malformed, a wrong signature, expired, another issuer, another audience,
// a missing scope for each route kind, both key types, scopes as scp, a key
// rotated into the JWKS after the keys were cached, and an expiry within
// the leeway. iss must be new, its JWKS the one api verifies against, for
// issuer and audience; Matrix publishes the keys it signs with.
func Matrix(t *testing.T, iss *Issuer, issuer, audience string, api API) {
	t.Helper()
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
			}
			req := api.Read(authz)
			if tc.route == write {
				req = api.Write(authz)
			}
			client := api.Client
			if client == nil {
				client = http.DefaultClient
			}
			resp, err := client.Do(req)
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
			if tc.typ != "" && p.Type != tc.typ {
				t.Errorf("problem type %q, want %q", p.Type, tc.typ)
			}
			if strings.Contains(p.Detail, "eyJ") {
				t.Errorf("the refusal echoes the token: %s", p.Detail)
			}
		})
	}
}
