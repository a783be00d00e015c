package web_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/ordersonkafka/orders/internal/devkit/tokentest"
	"github.com/ordersonkafka/orders/internal/platform/web"
)

const issuerURL, audience = "https://issuer.example", "orders-api"

// newAuth returns an Auth of tokens from issuerURL for audience, verified
// with the keys at jwksURL, with keys' durations.
func newAuth(t *testing.T, jwksURL string, keys web.KeySetConfig) *web.Auth {
	t.Helper()
	keys.URL = jwksURL
	auth, err := web.NewAuth(web.AuthConfig{Issuer: issuerURL, Audience: audience, Keys: keys})
	if err != nil {
		t.Fatal(err)
	}
	return auth
}

// serveAPI serves, behind auth, GET /orders/{id} answering 204, and
// /readyz with auth's checks; it returns the server's URL.
func serveAPI(t *testing.T, auth *web.Auth) string {
	t.Helper()
	root := web.NewRouter(web.RouterConfig{Checks: auth.Checks()})
	web.Guarded(root, auth).Get("/orders/{id}", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) })
	srv := httptest.NewServer(root)
	t.Cleanup(srv.Close)
	return srv.URL
}

// answer is what a request got.
type answer struct {
	status     int
	retryAfter string
	detail     string
}

// client sends the tests' requests: a deadline far above any fetch
// timeout they set, so a request hanging on the JWKS fails rather than
// blocks, and enough idle connections for 32 at a time.
var client = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}

// get sends GET url with the bearer token tok ("" for none).
func get(t *testing.T, url, tok string) answer {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var p struct{ Detail string }
	_ = json.NewDecoder(resp.Body).Decode(&p)
	return answer{resp.StatusCode, resp.Header.Get("Retry-After"), p.Detail}
}

// token signs claims for issuerURL and audience with k, edited by edit.
func token(t *testing.T, k tokentest.Key, edit func(map[string]any)) string {
	t.Helper()
	c := tokentest.Claims(issuerURL, audience, "alice", web.ScopeRead)
	if edit != nil {
		edit(c)
	}
	return tokentest.Token(t, k, c)
}

// The token matrix, through the router both APIs are built on: each case
// with its status, WWW-Authenticate and problem type; the handler sees the
// token's subject; /healthz stays open.
func TestBearerTokens(t *testing.T) {
	iss := tokentest.New(t)
	auth := newAuth(t, iss.URL, web.KeySetConfig{RefreshInterval: 100 * time.Millisecond})
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
	key := tokentest.NewKey(t, "sub-check", jose.ES256)
	iss.Publish(key)
	tokentest.Matrix(t, iss, issuerURL, audience, tokentest.API{
		Read: request("GET", "/orders/1"), ReadOK: 204, Write: request("POST", "/orders"), WriteOK: 204})

	if a := get(t, srv.URL+"/orders/1", token(t, key, nil)); a.status != 204 {
		t.Fatalf("a good token: %+v", a)
	}
	if got := sub.Load(); got != "alice" {
		t.Errorf("the handler saw subject %v, want alice", got)
	}
	if a := get(t, srv.URL+"/healthz", ""); a.status != 200 {
		t.Fatalf("/healthz without a token: %+v", a)
	}
}

// The time claims (RFC 7519 §4.1.4–6) and the others a token is held to,
// each refused with the reason in the problem's detail: exp is required,
// every time claim must be a JSON number, and exp, nbf and iat each get
// the same Leeway, no more.
func TestTokenClaims(t *testing.T) {
	iss := tokentest.New(t)
	key := tokentest.NewKey(t, "k", jose.ES256)
	iss.Publish(key)
	api := serveAPI(t, newAuth(t, iss.URL, web.KeySetConfig{})) + "/orders/1"
	now := time.Now()
	unix := func(d time.Duration) int64 { return now.Add(d).Unix() }
	for _, tc := range []struct {
		name   string
		edit   func(map[string]any)
		status int
		reason string
	}{
		{"exp as a string of digits is refused", func(c map[string]any) { c["exp"] = strconv.FormatInt(unix(time.Hour), 10) }, 401, "exp is not a number"},
		{"exp null is refused", func(c map[string]any) { c["exp"] = nil }, 401, "exp is not a number"},
		{"nbf as a string is refused", func(c map[string]any) { c["nbf"] = strconv.FormatInt(unix(-time.Hour), 10) }, 401, "nbf is not a number"},
		{"iat as a string is refused", func(c map[string]any) { c["iat"] = strconv.FormatInt(unix(0), 10) }, 401, "iat is not a number"},
		{"iat as a boolean is refused", func(c map[string]any) { c["iat"] = true }, 401, "iat is not a number"},
		{"a token without exp is refused as such, not as expired", func(c map[string]any) { delete(c, "exp") }, 401, "missing exp"},
		{"exp past the leeway is expired", func(c map[string]any) { c["exp"] = unix(-web.Leeway - 5*time.Second) }, 401, "expired"},
		{"exp within the leeway is taken", func(c map[string]any) { c["exp"] = unix(-web.Leeway + 10*time.Second) }, 204, ""},
		{"a fractional exp is taken", func(c map[string]any) { c["exp"] = float64(unix(time.Hour)) + 0.5 }, 204, ""},
		{"nbf beyond the leeway is not valid yet", func(c map[string]any) { c["nbf"] = unix(web.Leeway + 90*time.Second) }, 401, "not valid yet"},
		{"nbf within the leeway is taken", func(c map[string]any) { c["nbf"] = unix(web.Leeway - 10*time.Second) }, 204, ""},
		{"iat beyond the leeway is issued in the future", func(c map[string]any) { c["iat"] = unix(time.Hour) }, 401, "issued in the future"},
		{"iat within the leeway is taken", func(c map[string]any) { c["iat"] = unix(web.Leeway - 10*time.Second) }, 204, ""},
		{"aud as an array holding the audience is taken", func(c map[string]any) { c["aud"] = []string{"billing", audience} }, 204, ""},
		{"aud as an array without it is refused", func(c map[string]any) { c["aud"] = []string{"billing"} }, 401, "wrong audience"},
		{"iss as a number is refused", func(c map[string]any) { c["iss"] = 1 }, 401, "malformed claims"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := get(t, api, token(t, key, tc.edit))
			want := ""
			if tc.reason != "" {
				want = "the bearer token is not valid: " + tc.reason
			}
			if a.status != tc.status || a.detail != want {
				t.Errorf("%d %q, want %d %q", a.status, a.detail, tc.status, want)
			}
		})
	}
}

// When the issuer's keys cannot be fetched, a token is neither accepted nor
// called invalid: the answer is 503 with Retry-After, so the client retries
// the same token instead of dropping it.
func TestAnUnreachableIssuerIsUnavailableNotUnauthorized(t *testing.T) {
	key := tokentest.NewKey(t, "k", jose.ES256)
	jwks := httptest.NewServer(http.NotFoundHandler()) // an identity provider that does not answer its JWKS
	defer jwks.Close()
	req, _ := http.NewRequest("GET", serveAPI(t, newAuth(t, jwks.URL, web.KeySetConfig{}))+"/orders/1", nil)
	req.Header.Set("Authorization", "Bearer "+token(t, key, nil))
	resp, err := client.Do(req)
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

func TestNewAuthRefusesWhatCannotWork(t *testing.T) {
	for name, cfg := range map[string]web.AuthConfig{
		"no issuer":           {Audience: audience, Keys: web.KeySetConfig{URL: "http://127.0.0.1:1/jwks"}},
		"a JWKS URL of ftp":   {Issuer: issuerURL, Audience: audience, Keys: web.KeySetConfig{URL: "ftp://issuer/jwks"}},
		"a negative interval": {Issuer: issuerURL, Audience: audience, Keys: web.KeySetConfig{URL: "http://127.0.0.1:1/jwks", RefreshInterval: -time.Second}},
	} {
		if _, err := web.NewAuth(cfg); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
