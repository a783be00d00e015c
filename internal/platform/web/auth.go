package web

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
)

// The scopes of the APIs: reading (GET, HEAD) needs ScopeRead, anything
// else ScopeWrite.
const (
	ScopeRead  = "orders:read"
	ScopeWrite = "orders:write"
)

// Problem types of the authentication refusals.
const (
	TypeUnauthorized = "/problems/unauthorized"
	TypeForbidden    = "/problems/insufficient-scope"
)

// AuthRetryAfter is the Retry-After of a 503 when the issuer's keys cannot
// be fetched.
const AuthRetryAfter = 5 * time.Second

// Leeway is how far past its exp a token is still taken (clocks drift);
// nbf gets the verifier's own five minutes.
const Leeway = 30 * time.Second

// Auth makes an API an OAuth 2.0 resource server: every request must carry
// a JWT bearer token signed by a key of the issuer's JWKS (RS256 or ES256),
// issued by Issuer, for Audience, unexpired, with the scope its method
// needs. Keys are fetched once and cached; a token signed with a key the
// cache does not hold makes it fetch the JWKS again (key rotation).
type Auth struct {
	verifier *oidc.IDTokenVerifier
}

// NewAuth returns the Auth of tokens from issuer for audience, verified
// with the keys at jwksURL. ctx bounds the JWKS fetches' lifetime (the
// service's).
func NewAuth(ctx context.Context, jwksURL, issuer, audience string) *Auth {
	keys := oidc.NewRemoteKeySet(ctx, jwksURL)
	return &Auth{verifier: oidc.NewVerifier(issuer, keys, &oidc.Config{
		ClientID:             audience,
		SupportedSigningAlgs: []string{oidc.RS256, oidc.ES256},
		Now:                  func() time.Time { return time.Now().Add(-Leeway) },
	})}
}

type subjectKey struct{}

// Subject is the sub of the token the request was authenticated with, or "".
func Subject(ctx context.Context) string {
	s, _ := ctx.Value(subjectKey{}).(string)
	return s
}

type trackerKey struct{}

// TrackSubject returns ctx prepared to learn the sub a request is
// authenticated with further in, and a function that tells it once the
// request is served ("" if none): for a request log line written by a
// middleware outside the authentication.
func TrackSubject(ctx context.Context) (context.Context, func() string) {
	sub := new(string)
	return context.WithValue(ctx, trackerKey{}, sub), func() string { return *sub }
}

// Middleware refuses a request without a valid token (401) or without the
// scope its method needs (403), each with WWW-Authenticate and a problem
// body; it puts the token's sub on the request's span and context (Subject),
// never the token.
func (a *Auth) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, ok := bearer(r.Header.Get("Authorization"))
		if !ok {
			w.Header().Set("WWW-Authenticate", `Bearer realm="orders"`)
			Problem(w, r, http.StatusUnauthorized, TypeUnauthorized, "Unauthorized", "a bearer token is required", nil)
			return
		}
		tok, err := a.verifier.Verify(r.Context(), raw)
		if err != nil && strings.Contains(err.Error(), "fetching keys") {
			// The issuer's JWKS cannot be fetched (a key not cached yet, the
			// identity provider down): the token may well be good, so the
			// client should retry it, not drop it.
			Unavailable(w, r, AuthRetryAfter, TypeUnavailable,
				"the keys that verify bearer tokens cannot be fetched from the issuer right now; retry after the Retry-After delay")
			return
		}
		if err != nil {
			w.Header().Set("WWW-Authenticate", `Bearer realm="orders", error="invalid_token"`)
			Problem(w, r, http.StatusUnauthorized, TypeUnauthorized, "Unauthorized", "the bearer token is not valid: "+reason(err), nil)
			return
		}
		var claims struct {
			Scope string   `json:"scope"`
			Scp   []string `json:"scp"`
		}
		if err := tok.Claims(&claims); err != nil {
			w.Header().Set("WWW-Authenticate", `Bearer realm="orders", error="invalid_token"`)
			Problem(w, r, http.StatusUnauthorized, TypeUnauthorized, "Unauthorized", "the bearer token's scope claim is malformed", nil)
			return
		}
		trace.SpanFromContext(r.Context()).SetAttributes(attribute.String("enduser.id", tok.Subject))
		if sub, ok := r.Context().Value(trackerKey{}).(*string); ok {
			*sub = tok.Subject
		}
		r = r.WithContext(context.WithValue(r.Context(), subjectKey{}, tok.Subject))
		need := ScopeWrite
		if r.Method == http.MethodGet || r.Method == http.MethodHead {
			need = ScopeRead
		}
		if !slices.Contains(strings.Fields(claims.Scope), need) && !slices.Contains(claims.Scp, need) {
			w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm="orders", error="insufficient_scope", scope=%q`, need))
			Problem(w, r, http.StatusForbidden, TypeForbidden, "Forbidden", "the bearer token lacks the scope "+need, nil)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// bearer returns the token of an Authorization: Bearer header.
func bearer(h string) (string, bool) {
	scheme, tok, ok := strings.Cut(h, " ")
	tok = strings.TrimSpace(tok)
	return tok, ok && strings.EqualFold(scheme, "Bearer") && tok != ""
}

// reason says why a token was refused without echoing it.
func reason(err error) string {
	var expired *oidc.TokenExpiredError
	switch msg := err.Error(); {
	case errors.As(err, &expired):
		return "expired"
	case strings.Contains(msg, "issued by a different provider"):
		return "wrong issuer"
	case strings.Contains(msg, "expected audience"):
		return "wrong audience"
	case strings.Contains(msg, "signature") || strings.Contains(msg, "key"):
		return "bad signature or unknown key"
	case strings.Contains(msg, "nbf"):
		return "not valid yet"
	default:
		return "malformed"
	}
}
