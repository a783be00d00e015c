package web

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

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

// Leeway is how far a token's exp, nbf and iat may each be off (clocks
// drift): a token is taken until Leeway past its exp, from Leeway before
// its nbf, and with an iat up to Leeway ahead.
const Leeway = 30 * time.Second

// AuthConfig is what an API's bearer token authentication needs.
type AuthConfig struct {
	// Issuer is the tokens' iss; Audience a value their aud must hold.
	Issuer, Audience string
	// Keys is the issuer's JWKS.
	Keys KeySetConfig
}

// Auth makes an API an OAuth 2.0 resource server: every request must carry
// a JWT bearer token signed by a key of the issuer's JWKS (RS256 or ES256),
// issued by Issuer, for Audience, within its time claims (exp required),
// with the scope its method needs. The keys are a KeySet's: Run keeps them
// fresh, Checks report them in /readyz.
type Auth struct {
	keys             *KeySet
	issuer, audience string
}

// NewAuth returns the Auth cfg describes; it fetches nothing yet.
func NewAuth(cfg AuthConfig) (*Auth, error) {
	if cfg.Issuer == "" || cfg.Audience == "" {
		return nil, errors.New("authentication needs an issuer and an audience")
	}
	keys, err := NewKeySet(cfg.Keys)
	if err != nil {
		return nil, err
	}
	return &Auth{keys: keys, issuer: cfg.Issuer, audience: cfg.Audience}, nil
}

// Run fetches the issuer's keys and keeps them fresh until ctx ends
// (KeySet.Run).
func (a *Auth) Run(ctx context.Context) error { return a.keys.Run(ctx) }

// Checks are the readiness checks of the keys: auth_keys fails while no
// key was ever fetched (no token can pass); auth_keys_refresh, Optional,
// reports that the last fetch failed while the keys held still serve.
func (a *Auth) Checks() []Check {
	return []Check{
		{Name: "auth_keys", Func: a.keys.Ready},
		{Name: "auth_keys_refresh", Func: a.keys.Fresh, Optional: true},
	}
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
// body, and one whose token names a key that cannot be fetched yet (503
// with Retry-After); it puts the token's sub on the request's span and context (Subject),
// never the token.
func (a *Auth) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, ok := bearer(r.Header.Get("Authorization"))
		if !ok {
			w.Header().Set("WWW-Authenticate", `Bearer realm="orders"`)
			Problem(w, r, http.StatusUnauthorized, TypeUnauthorized, "Unauthorized", "a bearer token is required", nil)
			return
		}
		claims, err := a.verify(r.Context(), raw, time.Now())
		var unavailable *KeysUnavailableError
		if errors.As(err, &unavailable) {
			// The token names a key not held, and the JWKS cannot be fetched
			// for it now: it may be a key just rotated in, so the client
			// should retry the token, not drop it.
			Unavailable(w, r, unavailable.RetryAfter, TypeUnavailable,
				"the key that signed the bearer token cannot be fetched from the issuer right now; retry after the Retry-After delay")
			return
		}
		if err != nil {
			w.Header().Set("WWW-Authenticate", `Bearer realm="orders", error="invalid_token"`)
			Problem(w, r, http.StatusUnauthorized, TypeUnauthorized, "Unauthorized", "the bearer token is not valid: "+err.Error(), nil)
			return
		}
		trace.SpanFromContext(r.Context()).SetAttributes(attribute.String("enduser.id", claims.Subject))
		if sub, ok := r.Context().Value(trackerKey{}).(*string); ok {
			*sub = claims.Subject
		}
		r = r.WithContext(context.WithValue(r.Context(), subjectKey{}, claims.Subject))
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

// tokenClaims are the claims of a token the API reads.
type tokenClaims struct {
	Issuer   string   `json:"iss"`
	Audience audience `json:"aud"`
	Subject  string   `json:"sub"`
	// The time claims are kept raw, to refuse any that is not a number.
	Expiry    json.RawMessage `json:"exp"`
	NotBefore json.RawMessage `json:"nbf"`
	IssuedAt  json.RawMessage `json:"iat"`
	Scope     string          `json:"scope"`
	Scp       []string        `json:"scp"`
}

// claims decodes a verified token's payload and checks its claims at now
// (RFC 7519 §4.1): iss, aud, exp (required), nbf and iat, the time claims
// each within Leeway. Its errors say why, without echoing the token.
func (a *Auth) claims(payload []byte, now time.Time) (tokenClaims, error) {
	var c tokenClaims
	if err := json.Unmarshal(payload, &c); err != nil {
		return c, errors.New("malformed claims")
	}
	if c.Issuer != a.issuer {
		return c, errors.New("wrong issuer")
	}
	if !slices.Contains(c.Audience, a.audience) {
		return c, errors.New("wrong audience")
	}
	exp, hasExp, err := numericDate("exp", c.Expiry)
	if err != nil {
		return c, err
	}
	nbf, hasNbf, err := numericDate("nbf", c.NotBefore)
	if err != nil {
		return c, err
	}
	iat, hasIat, err := numericDate("iat", c.IssuedAt)
	if err != nil {
		return c, err
	}
	t, leeway := float64(now.UnixNano())/1e9, Leeway.Seconds()
	switch {
	case !hasExp:
		return c, errors.New("missing exp")
	case t >= exp+leeway:
		return c, errors.New("expired")
	case hasNbf && t+leeway < nbf:
		return c, errors.New("not valid yet")
	case hasIat && iat > t+leeway:
		return c, errors.New("issued in the future")
	}
	return c, nil
}

// numericDate reads a time claim (RFC 7519 §2: a JSON number of seconds
// since the epoch, fractions allowed); ok is false when it is absent. A
// string, even of digits, or null is refused.
func numericDate(name string, raw json.RawMessage) (secs float64, ok bool, err error) {
	if raw == nil {
		return 0, false, nil
	}
	if c := raw[0]; (c < '0' || c > '9') && c != '-' || json.Unmarshal(raw, &secs) != nil {
		return 0, true, fmt.Errorf("%s is not a number", name)
	}
	return secs, true, nil
}

// audience is aud: one string or an array of them (RFC 7519 §4.1.3).
type audience []string

func (a *audience) UnmarshalJSON(b []byte) error {
	var one string
	if json.Unmarshal(b, &one) == nil {
		*a = audience{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return err
	}
	*a = many
	return nil
}

// verify returns the claims of the token raw at now, or why it is refused:
// a *KeysUnavailableError, or an error that says why without echoing it.
func (a *Auth) verify(ctx context.Context, raw string, now time.Time) (tokenClaims, error) {
	payload, err := a.keys.VerifySignature(ctx, raw)
	var unavailable *KeysUnavailableError
	switch {
	case errors.As(err, &unavailable), errors.Is(err, ErrBadSignature), errors.Is(err, ErrUnknownKey):
		return tokenClaims{}, err
	case err != nil:
		return tokenClaims{}, ErrMalformedToken // its cause may quote the token
	}
	return a.claims(payload, now)
}
