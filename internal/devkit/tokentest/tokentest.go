// Package tokentest is a JWT issuer for tests: devstack's TokenIssuer,
// stopped when the test ends, with helpers that fail the test instead of
// returning errors.
package tokentest

import (
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/ordersonkafka/orders/internal/devkit/devstack"
)

// Issuer serves its JWKS at URL until the test ends.
type Issuer struct {
	URL string // the JWKS
	*devstack.TokenIssuer
}

// New starts an Issuer with no key published.
func New(tb testing.TB) *Issuer {
	tb.Helper()
	iss, err := devstack.StartTokenIssuer("127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(iss.Close)
	return &Issuer{URL: iss.JWKSURL, TokenIssuer: iss}
}

// Key is a signing key.
type Key = devstack.SigningKey

// NewKey makes a key; it signs tokens, but the issuer's JWKS holds it only
// once published.
func NewKey(tb testing.TB, id string, alg jose.SignatureAlgorithm) Key {
	tb.Helper()
	k, err := devstack.NewSigningKey(id, alg)
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

// Token signs claims with k.
func Token(tb testing.TB, k Key, claims map[string]any) string {
	tb.Helper()
	raw, err := k.Sign(claims)
	if err != nil {
		tb.Fatal(err)
	}
	return raw
}

// Claims are a token's claims for issuer and audience, subject sub, valid
// for an hour, with scope.
func Claims(issuer, audience, sub, scope string) map[string]any {
	return devstack.TokenClaims(issuer, audience, sub, scope, time.Hour)
}
